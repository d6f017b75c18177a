export { fetchCmd as default } from '../sources.js';
