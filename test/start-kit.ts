// `quill start` (with any extra arguments) in a child process on port 0 and a fresh data
// directory, for tests that drive it as an operator would; the store is opened beside it.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SqliteStore } from '../src/store/sqlite.js';
import type { Member } from '../src/store/types.js';
import { tempDir } from './helpers.js';

export class QuillStart {
  readonly data: string;
  child!: ChildProcess;
  store!: SqliteStore;
  /** Everything the process wrote, stdout and stderr. */
  output = '';

  constructor(
    prefix: string,
    private readonly args: string[] = [],
  ) {
    this.data = tempDir(prefix);
  }

  async start(): Promise<void> {
    const ports = ['--smtp', '--submission', '--pop3', '--imap', '--http'].flatMap((flag) => [flag, '127.0.0.1:0']);
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'start', ...this.args, '--data', this.data, ...ports], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.store = await SqliteStore.open(this.data);
  }

  /** Waits (60 s at most) until the member `pick` chooses from the membership satisfies `predicate`. */
  async member(pick: (members: Member[]) => Member | undefined, predicate: (m: Member | undefined) => boolean, what: string): Promise<Member | undefined> {
    const end = Date.now() + 60_000;
    for (;;) {
      const found = pick(await this.store.listMembers());
      if (predicate(found)) return found;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}:\n${this.output}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    await this.store.close();
    rmSync(this.data, { recursive: true, force: true });
  }
}
