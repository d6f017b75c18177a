export default async () => 0;
