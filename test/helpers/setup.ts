// Keep secrets from the developer's environment out of every test process.
for (const k of ['HF_TOKEN', 'RUNPOD_API_KEY', 'RUNPOD_AI_API_KEY', 'BUCKET_ACCESS_KEY_ID', 'BUCKET_SECRET_ACCESS_KEY']) {
  delete process.env[k];
}
