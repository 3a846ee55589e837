// Copies non-TypeScript assets the runtime reads at run time (SQL migrations) into dist/.
import { cpSync, existsSync, mkdirSync } from 'node:fs';
const pairs = [['persistence/migrations', 'dist/persistence/migrations']];
for (const [from, to] of pairs) {
  if (!existsSync(from)) continue;
  mkdirSync(to, { recursive: true });
  cpSync(from, to, { recursive: true });
}
