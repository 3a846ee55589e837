/** The example agents `npm start` runs (`echo` is the default type for unknown sessions). */
import { echo } from './echo.js';
import { slowWriter } from './slowWriter.js';

export { echo, slowWriter };
export const exampleAgents = [echo, slowWriter] as const;
