// The schema check: every change between the last released schema and schema.graphql, classified
// by GraphQL Inspector as breaking, dangerous or safe. Fails on a breaking change: to make one on
// purpose, move the release baseline (released.graphql) in the same change, with a CHANGELOG entry.
// Usage: node schema-diff.mjs released.graphql ../../schema.graphql
import { readFile } from 'node:fs/promises';
import { buildSchema } from 'graphql';
import { CriticalityLevel, diff } from '@graphql-inspector/core';

const [releasedPath, currentPath] = process.argv.slice(2);
const load = async (path) => buildSchema(await readFile(path, 'utf8'));
const changes = await diff(await load(releasedPath), await load(currentPath));
const labels = {
  [CriticalityLevel.Breaking]: 'breaking',
  [CriticalityLevel.Dangerous]: 'dangerous',
  [CriticalityLevel.NonBreaking]: 'safe',
};
for (const change of changes) {
  console.log(`${labels[change.criticality.level].padEnd(9)} ${change.message}`);
}
const breaking = changes.filter((change) => change.criticality.level === CriticalityLevel.Breaking);
console.log(
  `schema check: ${changes.length} change(s) since the release, ${breaking.length} breaking`,
);
process.exit(breaking.length === 0 ? 0 : 1);
