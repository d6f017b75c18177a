export { listCmd as default } from '../sources.js';
