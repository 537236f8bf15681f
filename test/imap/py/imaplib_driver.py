# Drives an IMAP server with Python's imaplib for the conformance suite (test/imap/*.test.ts).
# Usage: python3 imaplib_driver.py HOST PORT JSON
# JSON is {"user", "pass", "login": true|false, "steps": [[method, ...args], ...]}: the steps
# are imaplib.IMAP4 method calls made in order in one session (after LOGIN unless login is
# false). Arguments {"b64": ...} are bytes. Extra methods: "authenticate_plain" [user, pass].
# Prints one JSON list: per step {"ok": [typ, data]} or {"error": text}; bytes come back as
# {"b64": ...}. Steps after an error still run, so a test sees how the session went on.
import base64
import imaplib
import json
import sys


def plain(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def revive(value):
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [revive(v) for v in value]
    return value


def main():
    host, port, spec = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    imap = imaplib.IMAP4(host, port, timeout=20)
    results = []
    if spec.get("login", True):
        imap.login(spec["user"], spec["pass"])
    for method, *args in spec["steps"]:
        args = revive(args)
        try:
            if method == "authenticate_plain":
                user, password = args
                token = b"\0" + user.encode() + b"\0" + password.encode()
                result = imap.authenticate("PLAIN", lambda _challenge: token)
            elif method == "capabilities":
                result = ["OK", sorted(imap.capabilities)]
            else:
                result = getattr(imap, method)(*args)
            results.append({"ok": plain(result)})
        except (imaplib.IMAP4.error, OSError, EOFError) as error:
            results.append({"error": str(error)})
    print(json.dumps(results))


main()
