// Issue 17 row 4: from one address, 9 wrong passwords for bob then 1 right login for the
// client's own account, repeated. The own logins must not reset the address's count: the
// guessing gets throttled (bob's real password from that address is refused too), over IMAP,
// POP3, submission and the webmail login, while bob's own known address and a second client carry on.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers.js';
import { answeredWithin, succeeded, THROTTLED, tryLogin, whileTimingNoops, type Protocol } from './auth-kit.js';

const ATTACKER = '127.0.0.2';
const BOBS_PHONE = '127.0.0.3';
const BYSTANDER = '127.0.0.4';

for (const protocol of ['imap', 'pop3', 'submission', 'http'] as Protocol[]) {
  describe(`login throttling over ${protocol}`, () => {
    let server: TestServer;
    let port: number;

    before(async () => {
      server = await startTestServer({ overrides: { outbound: { enabled: false } } });
      port = server.port(protocol);
      await server.addUser('alice@example.com', 'alice-pw');
      await server.addUser('bob@example.com', 'bob-pw');
      await server.addUser('carol@example.com', 'carol-pw');
    });
    after(() => server.stop());

    it("does not let one's own successful logins reset the count of guesses for another account", async () => {
      // Bob has logged in from his phone before the attack starts.
      assert.ok(succeeded(protocol, await tryLogin(protocol, port, BOBS_PHONE, 'bob@example.com', 'bob-pw')));

      // The web has no NOOP: the second client is an IMAP one.
      const [noopProtocol, noopPort] = protocol === 'http' ? (['imap', server.port('imap')] as const) : ([protocol, port] as const);
      const { result: replies, noopMs } = await whileTimingNoops(noopProtocol, noopPort, BYSTANDER, 'carol@example.com', 'carol-pw', async () => {
        const guesses: string[] = [];
        for (let round = 0; round < 3; round++) {
          for (let i = 0; i < 9; i++) guesses.push(await tryLogin(protocol, port, ATTACKER, 'bob@example.com', `guess-${round}-${i}`));
          assert.ok(succeeded(protocol, await tryLogin(protocol, port, ATTACKER, 'alice@example.com', 'alice-pw')), `round ${round}: the attacker's own login still works`);
        }
        return guesses;
      });

      assert.equal(replies.filter((reply) => succeeded(protocol, reply)).length, 0);
      const throttled = replies.filter((reply) => THROTTLED[protocol].test(reply)).length;
      assert.ok(throttled >= 17, `guesses after the tenth failure are throttled (${throttled} of 27): ${replies.join(' | ')}`);
      // Even the right password is refused from the guessing address...
      assert.match(await tryLogin(protocol, port, ATTACKER, 'bob@example.com', 'bob-pw'), THROTTLED[protocol]);
      // ...while bob's own phone, known to his account, still gets in.
      assert.ok(succeeded(protocol, await tryLogin(protocol, port, BOBS_PHONE, 'bob@example.com', 'bob-pw')));

      assert.ok(noopMs.length >= 3, 'the second client was heard during the attack');
      assert.ok(answeredWithin(noopMs, 100), `a second client's NOOP answered within 100 ms: ${noopMs.map(Math.round).join(', ')}`);
    });

    it('counts parallel guesses as they are made: at most the limit get a password check', async () => {
      await server.addUser('erin@example.com', 'erin-pw');
      const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => tryLogin(protocol, port, '127.0.2.1', 'erin@example.com', `guess-${i}`)));
      const checked = replies.filter((reply) => !THROTTLED[protocol].test(reply)).length;
      assert.ok(checked <= 10, `${checked} of 30 parallel guesses were checked: ${replies.join(' | ')}`);
    });

    it('lets many users log in at once from one address (a NAT, a proxy): logins in progress are not failures of the address', async () => {
      const users = Array.from({ length: 14 }, (_, i) => `crowd${i}@example.com`);
      for (const user of users) await server.addUser(user, `${user}-pw`);
      const replies = await Promise.all(users.map((user) => tryLogin(protocol, port, '127.0.3.1', user, `${user}-pw`)));
      assert.equal(replies.filter((reply) => succeeded(protocol, reply)).length, users.length, replies.join(' | '));
    });

    it('lets one account log in many times at once from one address (a client opening its connections)', async () => {
      await server.addUser('fay@example.com', 'fay-pw');
      const replies = await Promise.all(Array.from({ length: 16 }, () => tryLogin(protocol, port, '127.0.4.1', 'fay@example.com', 'fay-pw')));
      // POP3 locks the maildrop (RFC 1939 8): one session gets it, the others' passwords were accepted.
      const accepted = (reply: string) => succeeded(protocol, reply) || (protocol === 'pop3' && /^-ERR \[IN-USE\]/.test(reply));
      assert.equal(replies.filter(accepted).length, 16, replies.join(' | '));
    });

    it('throttles an account guessed from many addresses, except for addresses it logged in from', async () => {
      // 30 failures for dave spread over 30 addresses, each under the per-address limit.
      await server.addUser('dave@example.com', 'dave-pw');
      assert.ok(succeeded(protocol, await tryLogin(protocol, port, '127.0.1.9', 'dave@example.com', 'dave-pw')));
      for (let i = 0; i < 30; i++) await tryLogin(protocol, port, `127.0.${10 + i}.1`, 'dave@example.com', `guess-${i}`);
      assert.match(await tryLogin(protocol, port, '127.0.99.1', 'dave@example.com', 'dave-pw'), THROTTLED[protocol]);
      assert.ok(succeeded(protocol, await tryLogin(protocol, port, '127.0.1.9', 'dave@example.com', 'dave-pw')));
    });
  });
}
