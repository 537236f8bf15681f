// `quill status`, `quill drain`, `quill undrain`: the membership as an operator sees it.
import type { Command } from 'commander';
import { isAlive } from '../cluster/membership.js';
import type { Member } from '../store/types.js';
import { formatSize } from '../util/size.js';
import { addStoreOptions, table, UsageError, withStore, type StoreOptions } from './common.js';

function ago(date: Date, now: number): string {
  const seconds = Math.max(0, (now - date.getTime()) / 1000);
  return seconds < 120 ? `${seconds.toFixed(1)}s ago` : `${Math.round(seconds / 60)}m ago`;
}

function describe(member: Member, now: number) {
  const alive = isAlive(member, now);
  return { ...member, alive, status: alive ? member.state : 'dead' };
}

export function addClusterCommands(program: Command): void {
  addStoreOptions(program.command('status'))
    .description('every node and gateway: state, load, version, last beat, connections')
    .option('--json', 'machine-readable output')
    .action(async (options: StoreOptions & { json?: boolean }) => {
      const now = Date.now();
      const members = (await withStore(options, (store) => store.listMembers())).map((m) => describe(m, now));
      if (options.json) {
        process.stdout.write(JSON.stringify(members, null, 2) + '\n');
        return;
      }
      if (members.length === 0) {
        process.stdout.write('no nodes or gateways are running\n');
        return;
      }
      const rows = [['ID', 'KIND', 'STATE', 'VERSION', 'LAST BEAT', 'CONNECTIONS', 'CPU', 'LOOP DELAY', 'RSS', 'LISTENING']];
      for (const m of members) {
        const connections = Object.entries(m.load.connections).map(([proto, n]) => `${proto}=${n}`).join(' ');
        const listening = Object.entries(m.addresses).map(([proto, addr]) => `${proto}@${addr}`).join(' ');
        rows.push([m.id, m.kind, m.status, m.version, ago(m.beatAt, now), connections || '-', `${m.load.cpuPercent}%`, `${m.load.eventLoopDelayMs}ms`, formatSize(m.load.rssBytes), listening]);
      }
      process.stdout.write(table(rows));
    });

  for (const [name, state, text] of [
    ['drain', 'draining', 'stop sending new sessions to a node (gateways move idle sessions away)'],
    ['undrain', 'active', 'let a drained node take new sessions again'],
  ] as const) {
    addStoreOptions(program.command(`${name} <node>`))
      .description(text)
      .action(async (id: string, options: StoreOptions) => {
        const found = await withStore(options, async (store) => {
          const member = (await store.listMembers()).find((m) => m.id === id);
          // As in the admin API: a gateway takes no sessions of its own to drain.
          if (member?.kind === 'gateway') throw new UsageError(`${id} is a gateway; only nodes drain`);
          return store.requestMemberState(id, state);
        });
        if (!found) throw new UsageError(`no node ${id} (see quill status)`);
        process.stdout.write(`node ${id}: ${state} requested\n`);
      });
  }
}
