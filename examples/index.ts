/** The example agents `npm start` runs (`echo` is the default type for unknown sessions). */
import { echo } from './echo.js';
import { slowWriter } from './slowWriter.js';
import { toolApproval } from './toolApproval.js';

export { echo, slowWriter, toolApproval };
export const exampleAgents = [echo, slowWriter, toolApproval] as const;
