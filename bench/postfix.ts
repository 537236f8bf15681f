// A private Postfix instance for the SMTP benchmark, entirely inside a temp dir:
// config_directory, queue_directory and data_directory there, smtpd on 127.0.0.1:<high port>,
// virtual(8) delivering to Maildir under <dir>/mail owned by nobody. Needs root (the master runs as root
// and drops to mail_owner=postfix); the system instance in /etc/postfix is not touched or started.
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, has, run, sleep, tempDir, waitForPort } from './lib.js';

export interface Postfix {
  port: number;
  dir: string;
  masterPid(): number | undefined;
  /** Messages already in the users' Maildir new/ folders. */
  delivered(): number;
  stop(): Promise<void>;
}

export function postfixMissing(): string | undefined {
  if (!has('postfix') && !existsSync('/usr/sbin/postfix')) return 'postfix is not installed (apt-get install -y postfix)';
  if (process.getuid?.() !== 0) return 'postfix needs root for its master process; run the benchmark as root';
  if (!existsSync('/etc/postfix/master.cf')) return 'postfix is installed but /etc/postfix/master.cf is missing';
  return undefined;
}

export async function startPostfix(domain: string, users: string[], extraMain: string[] = []): Promise<Postfix> {
  const dir = tempDir('postfix-bench-');
  const etc = join(dir, 'etc');
  const spool = join(dir, 'spool');
  const data = join(dir, 'data');
  const mail = join(dir, 'mail');
  for (const d of [etc, spool, data, mail]) mkdirSync(d, { recursive: true });
  chownSync(data, Number(run('id', ['-u', 'postfix']).trim()), Number(run('id', ['-g', 'postfix']).trim()));
  chownSync(mail, 65534, 65534);
  const port = await freePort();

  // master.cf: Debian's, with the public smtp listener replaced by 127.0.0.1:<port>, and no chroot anywhere
  // (a chroot would need copies of /etc files inside the temp queue dir).
  const master = readFileSync('/etc/postfix/master.cf', 'utf8')
    .split('\n')
    .map((line) => {
      if (/^smtp\s+inet\s/.test(line)) return `127.0.0.1:${port} inet n - n - - smtpd`;
      const fields = line.split(/\s+/);
      if (!line.startsWith('#') && !/^\s/.test(line) && fields.length >= 8 && fields[4] === 'y') {
        fields[4] = 'n';
        return fields.join(' ');
      }
      return line;
    })
    .join('\n');
  writeFileSync(join(etc, 'master.cf'), master);
  writeFileSync(
    join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${spool}`,
      `data_directory = ${data}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      'myhostname = postfix.bench.local',
      'mydomain = bench.local',
      'myorigin = $myhostname',
      'mydestination =',
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_peername_lookup = no',
      'smtp_dns_support_level = disabled',
      'alias_maps =',
      'alias_database =',
      'biff = no',
      'smtputf8_enable = no',
      `maillog_file = ${join(dir, 'maillog')}`,
      `maillog_file_prefixes = ${dir}`,
      // one client address opens every connection: lift anvil's per-client caps and the process limit
      'smtpd_client_connection_count_limit = 0',
      'smtpd_client_connection_rate_limit = 0',
      'smtpd_client_message_rate_limit = 0',
      'default_process_limit = 300',
      `virtual_mailbox_domains = ${domain}`,
      `virtual_mailbox_base = ${mail}`,
      `virtual_mailbox_maps = hash:${join(etc, 'vmailbox')}`,
      'virtual_minimum_uid = 100',
      'virtual_uid_maps = static:65534',
      'virtual_gid_maps = static:65534',
      'virtual_destination_concurrency_limit = 20',
      'message_size_limit = 26214400',
      ...extraMain,
      '',
    ].join('\n'),
  );
  // A trailing slash makes virtual(8) deliver to a Maildir.
  writeFileSync(join(etc, 'vmailbox'), users.map((u) => `${u} ${domain}/${u.split('@')[0]}/\n`).join(''));
  run('postmap', [`hash:${join(etc, 'vmailbox')}`]);
  run('postfix', ['-c', etc, 'start']);
  await waitForPort(port);
  const pidFile = join(spool, 'pid', 'master.pid');
  return {
    port,
    dir,
    masterPid() {
      try {
        return Number(readFileSync(pidFile, 'utf8').trim());
      } catch {
        return undefined;
      }
    },
    delivered() {
      let n = 0;
      for (const user of users) {
        const folder = join(mail, domain, user.split('@')[0]!, 'new');
        if (existsSync(folder)) n += readdirSync(folder).length;
      }
      return n;
    },
    async stop() {
      try {
        run('postfix', ['-c', etc, 'stop']);
      } catch {
        // already down
      }
      await sleep(500);
      run('rm', ['-rf', dir]);
    },
  };
}
