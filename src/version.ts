/** Quillmail's version, as the IMAP ID reply (RFC 2971) and the cluster's membership rows show it. */
export const VERSION = '0.1.0';
