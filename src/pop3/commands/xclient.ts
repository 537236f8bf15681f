// XCLIENT LOGIN=<xtext address>: a trusted gateway (config trustedGateways) names the user whose
// password it has checked itself, as Postfix's XCLIENT does for SMTP. The gateway uses it for
// every login it carries and to rebuild a session on this node when another node died.
// From anyone else the command does not exist.
import { syntaxError } from '../errors.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

export const xclient: Pop3Command = {
  states: AUTHORIZATION,
  async run(session, { words }) {
    if (!session.fromGateway) throw syntaxError('unknown command');
    const login = words.find((word) => word.toUpperCase().startsWith('LOGIN='));
    if (words.length !== 1 || !login) throw syntaxError('XCLIENT needs LOGIN=address');
    // RFC 1891 xtext: +XX is a hex-encoded byte.
    const address = Buffer.concat(
      login
        .slice(6)
        .split(/(\+[0-9A-F]{2})/)
        .map((part) => (/^\+[0-9A-F]{2}$/.test(part) ? Buffer.from([parseInt(part.slice(1), 16)]) : Buffer.from(part, 'utf8'))),
    ).toString('utf8');
    if (address === '') throw syntaxError('XCLIENT needs LOGIN=address');
    session.pendingUser = undefined;
    await session.loginAsGateway(address);
  },
};
