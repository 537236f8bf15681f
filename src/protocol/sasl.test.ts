import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SaslError, saslExchange } from './sasl.js';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

/** An ask that answers from a script and records the challenges. */
function script(answers: string[]): { ask: (challenge: string) => Promise<string>; challenges: string[] } {
  const challenges: string[] = [];
  return {
    challenges,
    ask: async (challenge) => {
      challenges.push(challenge);
      const answer = answers.shift();
      if (answer === undefined) throw new Error('asked once too often');
      return answer;
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SaslError, String(error));
    return error.reason;
  }
  assert.fail('the exchange succeeded');
}

describe('SASL PLAIN and LOGIN exchanges', () => {
  it('PLAIN with and without an initial response, with the user as authzid, in any case', async () => {
    const none = script([b64('\0bob@example.com\0pässword')]);
    assert.deepEqual(await saslExchange('plain', undefined, none.ask), { authcid: 'bob@example.com', password: 'pässword' });
    assert.deepEqual(none.challenges, ['']);
    const initial = script([]);
    assert.deepEqual(await saslExchange('PLAIN', b64('Bob@Example.com\0bob@example.com\0x'), initial.ask), { authcid: 'bob@example.com', password: 'x' });
    assert.deepEqual(initial.challenges, []);
    assert.deepEqual(await saslExchange('PLAIN', undefined, script([`${b64('\0a\0')}\r\n`]).ask), { authcid: 'a', password: '' }, 'an empty password, a trailing CRLF');
  });

  it('LOGIN asks Username: then Password:, or takes the user name as the initial response', async () => {
    const both = script([b64('alice@example.com'), b64('secret')]);
    assert.deepEqual(await saslExchange('LOGIN', undefined, both.ask), { authcid: 'alice@example.com', password: 'secret' });
    assert.deepEqual(both.challenges.map((c) => Buffer.from(c, 'base64').toString()), ['Username:', 'Password:']);
    const ir = script([b64('secret')]);
    assert.deepEqual(await saslExchange('LOGIN', b64('alice@example.com'), ir.ask), { authcid: 'alice@example.com', password: 'secret' });
    assert.equal(ir.challenges.length, 1);
    assert.deepEqual(await saslExchange('LOGIN', b64('alice'), script(['=']).ask).catch((e: SaslError) => e.reason), 'malformed-base64', '"=" is empty only as the initial response');
    assert.deepEqual(await saslExchange('LOGIN', '=', script(['']).ask), { authcid: '', password: '' });
  });

  it('"*" cancels at any step', async () => {
    assert.equal(await failure(saslExchange('PLAIN', undefined, script(['*']).ask)), 'cancelled');
    assert.equal(await failure(saslExchange('LOGIN', undefined, script(['*']).ask)), 'cancelled');
    assert.equal(await failure(saslExchange('LOGIN', undefined, script([b64('u'), '*']).ask)), 'cancelled');
    assert.equal(await failure(saslExchange('PLAIN', '*', script([]).ask)), 'cancelled');
  });

  it('refuses malformed base64, a malformed PLAIN message, another authzid and unknown mechanisms', async () => {
    for (const bad of ['not base64!', 'YWJj=', 'YQ', 'Y===', `${b64('\0a\0b')} x`]) {
      assert.equal(await failure(saslExchange('PLAIN', bad, script([]).ask)), 'malformed-base64', bad);
      assert.equal(await failure(saslExchange('LOGIN', undefined, script([b64('u'), bad]).ask)), 'malformed-base64', bad);
    }
    assert.equal(await failure(saslExchange('PLAIN', b64('a\0b'), script([]).ask)), 'malformed');
    assert.equal(await failure(saslExchange('PLAIN', b64('\0a\0b\0c'), script([]).ask)), 'malformed');
    assert.equal(await failure(saslExchange('PLAIN', b64('\0\0pw'), script([]).ask)), 'malformed');
    assert.equal(await failure(saslExchange('PLAIN', b64('admin@example.com\0bob@example.com\0pw'), script([]).ask)), 'bad-authzid');
    assert.equal(await failure(saslExchange('CRAM-MD5', undefined, script([]).ask)), 'unsupported');
  });

  it('passes on the ask callback’s own failure', async () => {
    await assert.rejects(
      saslExchange('LOGIN', undefined, async () => {
        throw new Error('connection closed');
      }),
      /connection closed/,
    );
  });
});
