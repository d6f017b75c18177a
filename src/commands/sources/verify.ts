export { verifyCmd as default } from '../sources.js';
