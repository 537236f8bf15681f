// XCLIENT LOGIN=<xtext address>: a trusted gateway (config trustedGateways) names the user whose
// password it has checked itself, as Postfix's XCLIENT does for SMTP. The gateway uses it for
// every login it carries and to rebuild a session on this node when another node died.
// From anyone else the command does not exist.
import { decodeXtext } from '../../protocol/xtext.js';
import { syntaxError } from '../errors.js';
import { AUTHORIZATION, type Pop3Command } from './command.js';

export const xclient: Pop3Command = {
  states: AUTHORIZATION,
  async run(session, { words }) {
    if (!session.fromGateway) throw syntaxError('unknown command');
    const login = words.find((word) => word.toUpperCase().startsWith('LOGIN='));
    if (words.length !== 1 || !login) throw syntaxError('XCLIENT needs LOGIN=address');
    // RFC 3461 4 xtext: +XX is a hex-encoded byte of the UTF-8.
    const address = decodeXtext(login.slice(6));
    if (!address) throw syntaxError('XCLIENT needs LOGIN=address');
    session.pendingUser = undefined;
    await session.loginAsGateway(address);
  },
};
