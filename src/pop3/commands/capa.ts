// RFC 2449 5 CAPA, with the capabilities of RFC 2449 6, RFC 2595 4 (STLS), RFC 3206 6
// (AUTH-RESP-CODE) and RFC 5034 (SASL). Mechanisms and USER are offered only where a
// password may be sent (after STLS, or on loopback when configured).
import { SASL_MECHANISMS } from './auth.js';
import { ANY_STATE, type Pop3Command } from './command.js';

export const capa: Pop3Command = {
  states: ANY_STATE,
  async run(session) {
    const lines = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];
    if (session.state === 'AUTHORIZATION') {
      if (!session.isSecure) lines.push('STLS');
      if (session.plaintextAllowed) lines.push('USER', `SASL ${SASL_MECHANISMS.join(' ')}`);
    }
    lines.push('IMPLEMENTATION Quillmail');
    await session.replyLines('+OK capability list follows', lines);
  },
};
