/** The example agents `npm start` runs (`echo` is the default type for unknown sessions). */
import { echo } from './echo.js';
import { slowWriter } from './slowWriter.js';
import { toolApproval } from './toolApproval.js';
import { budgetedChat } from './budgetedChat.js';

export { echo, slowWriter, toolApproval, budgetedChat };
export const exampleAgents = [echo, slowWriter, toolApproval, budgetedChat] as const;
