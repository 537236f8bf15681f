import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../test/helpers.js';
import { ConfigError, loadConfig } from './config.js';

function withFile(text: string): string {
  const file = path.join(tempDir('quill-config-'), 'quill.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  it('gives defaults for everything', () => {
    const config = loadConfig();
    assert.equal(config.listen.smtp, '127.0.0.1:2525');
    assert.equal(config.listen.submission, '127.0.0.1:2587');
    assert.equal(config.listen.pop3, '127.0.0.1:2110');
    assert.equal(config.listen.imap, '127.0.0.1:2143');
    assert.equal(config.listen.http, '127.0.0.1:8080');
    assert.equal(config.data, './quill-data');
    assert.equal(config.limits.messageSize, 25 * 1024 * 1024);
    assert.ok(Object.isFrozen(config.limits));
  });

  it('accepts the documented production example (but for its TLS files)', () => {
    const example = path.resolve('docs/quill.example.yaml');
    assert.throws(() => loadConfig(example), /tls\.cert: file \/etc\/quill\/fullchain\.pem does not exist/);
    const text = readFileSync(example, 'utf8').replace(/^tls:.*\n(  .*\n)+/m, '');
    const config = loadConfig(withFile(text));
    assert.equal(config.listen.smtp, '0.0.0.0:25');
    assert.equal(config.store.maxDatabaseBytes, 50 * 1024 ** 3);
  });

  it('names the key in one line for unknown keys, bad ports and bad sizes', () => {
    assert.throws(() => loadConfig(withFile('limits:\n  recipients: 5\n  bogus: 1\n')), (e: Error) => e instanceof ConfigError && /unknown key limits\.bogus/.test(e.message));
    assert.throws(() => loadConfig(withFile('listen:\n  pop3: "localhost:70000"\n')), /listen\.pop3: must be HOST:PORT/);
    assert.throws(() => loadConfig(withFile('limits:\n  messageSize: huge\n')), /limits\.messageSize: not a size/);
    assert.throws(() => loadConfig(withFile('hostname: [a\n')), /not valid YAML/);
    assert.throws(() => loadConfig('/nonexistent/quill.yaml'), /does not exist/);
  });

  it('lets command-line flags override the file and resolves data relative to it', () => {
    const file = withFile('data: store\nlisten:\n  imap: 127.0.0.1:1143\n');
    const config = loadConfig(file, { listen: { imap: '127.0.0.1:9143' } });
    assert.equal(config.listen.imap, '127.0.0.1:9143');
    assert.equal(config.data, path.join(path.dirname(file), 'store'));
  });
});
