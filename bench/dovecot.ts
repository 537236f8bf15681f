// A private Dovecot for the IMAP benchmark, entirely inside a temp dir: its own dovecot.conf (given with -c),
// base_dir/state_dir/logs there, imap on 127.0.0.1:<high port>, passwd-file users, Maildir under <dir>/vmail
// owned by nobody. fsync settings are Dovecot's defaults (mail_fsync = optimized). Needs root for the master.
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, has, sleep, tempDir, waitForPort } from './lib.js';
import { spawnSync } from 'node:child_process';

export interface Dovecot {
  port: number;
  /** The POP3 listener, when asked for (options.pop3). */
  pop3Port?: number;
  dir: string;
  masterPid(): number | undefined;
  stop(): Promise<void>;
}

export function dovecotMissing(): string | undefined {
  if (!has('dovecot') && !existsSync('/usr/sbin/dovecot')) return 'dovecot is not installed (apt-get install -y dovecot-imapd)';
  if (process.getuid?.() !== 0) return 'dovecot needs root for its master process; run the benchmark as root';
  return undefined;
}

export async function startDovecot(users: string[], password: string, options: { pop3?: boolean } = {}): Promise<Dovecot> {
  const dir = tempDir('dovecot-bench-');
  const vmail = join(dir, 'vmail');
  for (const d of [join(dir, 'run'), join(dir, 'state'), vmail]) mkdirSync(d, { recursive: true });
  chownSync(vmail, 65534, 65534);
  const port = await freePort();
  const pop3Port = options.pop3 ? await freePort() : undefined;
  const pop3 = pop3Port
    ? `service pop3-login {\n  inet_listener pop3 {\n    address = 127.0.0.1\n    port = ${pop3Port}\n  }\n  inet_listener pop3s {\n    port = 0\n  }\n}\nprotocol pop3 {\n  mail_max_userip_connections = 20000\n}\n`
    : '';
  writeFileSync(join(dir, 'passwd'), users.map((u) => `${u}:{PLAIN}${password}\n`).join(''));
  writeFileSync(
    join(dir, 'dovecot.conf'),
    `protocols = imap${pop3Port ? ' pop3' : ''}
listen = 127.0.0.1
instance_name = dovecot-bench-${port}
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:${vmail}/%n
first_valid_uid = 100
default_client_limit = 15000
default_vsz_limit = 512M
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=${vmail}/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
  process_limit = 1000
}
service imap {
  process_limit = 12000
}
service imap-urlauth-login {
  process_limit = 10
}
protocol imap {
  mail_max_userip_connections = 20000
}
${pop3}`,
  );
  // stdio ignored: the daemonized master keeps inherited pipes open, so spawnSync would never return.
  const started = spawnSync('dovecot', ['-c', join(dir, 'dovecot.conf')], { stdio: 'ignore' });
  if (started.status !== 0) throw new Error(`dovecot failed to start (status ${started.status}); see doveconf -c ${dir}/dovecot.conf`);
  await waitForPort(port);
  const pidFile = join(dir, 'run', 'master.pid');
  const masterPid = () => {
    try {
      return Number(readFileSync(pidFile, 'utf8').trim());
    } catch {
      return undefined;
    }
  };
  if (pop3Port) await waitForPort(pop3Port);
  return {
    port,
    pop3Port,
    dir,
    masterPid,
    async stop() {
      const pid = masterPid();
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // gone
        }
        for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await sleep(100);
      }
      spawnSync('rm', ['-rf', dir]);
    },
  };
}
