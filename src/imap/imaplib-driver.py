# Drives Quillmail's IMAP server with Python's imaplib (argv: port user password) and
# prints what it saw as one JSON object, for src/imap/imaplib.test.ts to check.
import imaplib
import json
import sys

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {}
m = imaplib.IMAP4('127.0.0.1', port)
out['starttls'] = m.starttls()[0]
out['login'] = m.login(user, password)[0]
out['create'] = m.create('"Python &- Co"')[0]
typ, data = m.list()
out['list'] = [d.decode() for d in data]
raw = b'From: py@example.com\r\nSubject: from imaplib\r\n\r\nline one\r\nline two\r\n'
typ, data = m.append('INBOX', '(\\Flagged)', imaplib.Time2Internaldate(1700000000), raw)
out['append'] = [typ, data[0].decode()]
typ, data = m.select('INBOX')
out['exists'] = int(data[0])
typ, data = m.uid('SEARCH', None, 'FLAGGED')
uid = data[0].split()[-1]
typ, data = m.uid('FETCH', uid, '(RFC822 INTERNALDATE)')
out['bytes_equal'] = data[0][1] == raw
out['internaldate'] = imaplib.Internaldate2tuple(data[1]) is not None
typ, data = m.uid('STORE', uid, '+FLAGS', '(\\Deleted)')
out['store'] = data[0].decode()
typ, data = m.uid('COPY', uid, '"Python &- Co"')
out['copy'] = typ
out['expunge'] = [d.decode() for d in m.expunge()[1] if d]
typ, data = m.status('"Python &- Co"', '(MESSAGES)')
out['status'] = data[0].decode()
out['close'] = m.close()[0]
out['logout'] = m.logout()[0]
print(json.dumps(out))
