#!/usr/bin/env python3
"""Drives one SMTP transaction with Python's smtplib for the tests; prints what happened as JSON.

Input (JSON on stdin): port, optional starttls, login [user, password], sender, recipients,
message (base64). Output: features, the code and text of every step.
"""
import base64
import json
import smtplib
import ssl
import sys


def reply(code, text):
    return {"code": code, "text": text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)}


def main():
    spec = json.load(sys.stdin)
    out = {}
    smtp = smtplib.SMTP("127.0.0.1", spec["port"], local_hostname="client.example", timeout=20)
    smtp.ehlo()
    if spec.get("starttls"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        smtp.starttls(context=context)
        smtp.ehlo()
    out["features"] = sorted(k.upper() for k in smtp.esmtp_features)
    out["size"] = smtp.esmtp_features.get("size")
    out["auth"] = smtp.esmtp_features.get("auth")
    if spec.get("login"):
        try:
            out["login"] = reply(*smtp.login(*spec["login"]))
        except smtplib.SMTPAuthenticationError as error:
            out["login"] = reply(error.smtp_code, error.smtp_error)
        except smtplib.SMTPNotSupportedError as error:
            out["login"] = {"code": 0, "text": str(error)}
    out["mail"] = reply(*smtp.mail(spec["sender"]))
    out["rcpt"] = [reply(*smtp.rcpt(r)) for r in spec["recipients"]]
    if out["mail"]["code"] == 250 and any(r["code"] == 250 for r in out["rcpt"]):
        out["data"] = reply(*smtp.data(base64.b64decode(spec["message"])))
    smtp.quit()
    json.dump(out, sys.stdout)


main()
