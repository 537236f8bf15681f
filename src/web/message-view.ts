// A stored message as the browser sees it: summary fields for lists, and the full view with
// text, HTML made safe (sanitize-html: no scripts, no event handlers, no remote images
// unless asked), and the attachment list.
import { simpleParser, type AddressObject, type Attachment, type EmailAddress, type ParsedMail } from 'mailparser';
import sanitizeHtml from 'sanitize-html';
import { findBodyStart } from '../mime/header.js';

export interface AddressOut {
  name: string;
  address: string;
}

export interface AttachmentOut {
  index: number;
  filename: string | null;
  contentType: string;
  size: number;
  inline: boolean;
  /** Shown inside the HTML (a cid: image), so not listed again. */
  embedded: boolean;
}

function flatten(list: EmailAddress[]): AddressOut[] {
  return list.flatMap((entry) => (entry.group ? flatten(entry.group) : entry.address ? [{ name: entry.name, address: entry.address }] : []));
}

function addresses(value: AddressObject | AddressObject[] | undefined): AddressOut[] {
  if (!value) return [];
  return (Array.isArray(value) ? value : [value]).flatMap((object) => flatten(object.value));
}

/** How much of a message the preview line reads: the first text is near the start. */
const PREVIEW_BYTES = 32 * 1024;
const PREVIEW_CHARS = 160;

/** The first words of the text, without quoted lines, signatures or runs of white space. */
export function previewOf(text: string): string {
  const lines: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (/^-- ?$/.test(line) || /^-{5,} ?Forwarded message/i.test(line)) break;
    if (/^\s*>/.test(line) || /^On .+wrote:\s*$/.test(line)) continue;
    lines.push(line);
  }
  const flat = lines.join(' ').replace(/\s+/g, ' ').trim();
  return flat.length > PREVIEW_CHARS ? `${flat.slice(0, PREVIEW_CHARS - 1)}…` : flat;
}

function referencesOf(value: string | string[] | undefined): string[] {
  return typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : (value ?? []);
}

/** List fields: the header block, and a preview line from the first text of the body. */
export async function summarize(raw: Buffer) {
  const header = raw.subarray(0, findBodyStart(raw, 0, raw.length));
  const parsed = await simpleParser(header, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true });
  const contentType = parsed.headers.get('content-type');
  const type = typeof contentType === 'object' && contentType && 'value' in contentType ? String(contentType.value) : '';
  // The start of the message is enough for the first text part; a cut-off attachment is ignored.
  const start = await simpleParser(raw.subarray(0, PREVIEW_BYTES), { skipTextToHtml: true, skipImageLinks: true }).catch(() => undefined);
  return {
    subject: parsed.subject ?? '',
    from: addresses(parsed.from),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    date: parsed.date?.toISOString() ?? null,
    hasAttachments: /^multipart\/mixed$/i.test(type),
    messageId: parsed.messageId ?? null,
    inReplyTo: parsed.inReplyTo ?? null,
    references: referencesOf(parsed.references),
    preview: previewOf(start?.text ?? ''),
  };
}

// Presentation attributes HTML mail relies on. Style sheets stay (the frame is their scope)
// with @import and remote url() taken out unless the reader asked for remote content.
const ALLOWED_ATTRIBUTES: sanitizeHtml.IOptions['allowedAttributes'] = {
  a: ['href', 'name', 'title', 'target', 'rel'],
  img: ['src', 'alt', 'title', 'width', 'height'],
  table: ['width', 'border', 'cellpadding', 'cellspacing', 'align', 'bgcolor'],
  td: ['width', 'colspan', 'rowspan', 'align', 'valign', 'bgcolor'],
  th: ['width', 'colspan', 'rowspan', 'align', 'valign', 'bgcolor'],
  tr: ['align', 'valign', 'bgcolor'],
  font: ['color', 'face', 'size'],
  '*': ['dir', 'lang', 'align', 'style', 'class'],
};

// Inline styles survive only as these properties with plain values (no url(), no expression()).
const PLAIN_VALUE = /^(?![\s\S]*(?:url|expression|image-set|image)\s*\()[-#a-z0-9 .,%()!'"]+$/i;
const ALLOWED_STYLES = Object.fromEntries(
  ['color', 'background-color', 'text-align', 'text-decoration', 'font-weight', 'font-style', 'font-size', 'font-family', 'line-height', 'padding', 'margin', 'border', 'width', 'max-width', 'vertical-align'].map(
    (property) => [property, [PLAIN_VALUE]],
  ),
);

/**
 * A message's style sheet for its own frame: no @import, no remote url() unless asked, no
 * expression(); `</` cannot occur (the parser ended the element there).
 */
export function safeStyleSheet(css: string, images: boolean): { css: string; remote: number } {
  let remote = 0;
  const out = css
    .replace(/@import[^;]*;?/gi, '')
    .replace(/expression\s*\(/gi, 'invalid(')
    .replace(/url\s*\(\s*(['"]?)([^'")]*)\1\s*\)/gi, (whole, _quote: string, target: string) => {
      if (/^data:image\//i.test(target)) return whole;
      const isRemote = /^(?:https?:)?\/\//i.test(target);
      if (isRemote) remote++;
      return images && isRemote ? whole : 'none';
    })
    .replace(/<\//g, '');
  return { css: out, remote };
}

const REMOTE = /^\s*(?:https?:)?\/\//i;
const INLINE_IMAGE = /^\s*data:image\/[\w.+-]+[;,]/i;

/**
 * HTML safe to show in a sandboxed frame: scripts, handlers, forms, frames and style sheets
 * go; links open elsewhere; remote images are dropped unless `images` (counted so the page
 * can offer to load them).
 */
export function sanitizeMailHtml(html: string, images: boolean): { html: string; remoteImages: number } {
  let remoteImages = 0;
  const clean = sanitizeHtml(html, {
    allowedTags: [...sanitizeHtml.defaults.allowedTags, 'img', 'font', 'center', 'style'],
    allowVulnerableTags: true, // <style> only: its text is filtered below and the frame runs no script
    allowedAttributes: ALLOWED_ATTRIBUTES,
    allowedStyles: { '*': ALLOWED_STYLES },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: images ? ['http', 'https', 'data'] : ['data'] },
    allowProtocolRelative: false,
    transformTags: {
      a: (tagName, attribs) => ({ tagName, attribs: { ...attribs, target: '_blank', rel: 'noopener noreferrer' } }),
      img: (tagName, attribs) => {
        const { src, ...rest } = attribs;
        if (src === undefined) return { tagName, attribs };
        const remote = REMOTE.test(src);
        if (remote) remoteImages++;
        // Inline images (cid: became data:image/...) always; remote ones when allowed; a relative
        // source (it would resolve against our own origin) never.
        const keep = INLINE_IMAGE.test(src) || (remote && images);
        return { tagName, attribs: keep ? attribs : rest };
      },
    },
  });
  const out = clean.replace(/(<style[^>]*>)([\s\S]*?)(<\/style>)/gi, (_, open: string, css: string, close: string) => {
    const sheet = safeStyleSheet(css, images);
    remoteImages += sheet.remote;
    return open + sheet.css + close;
  });
  return { html: out, remoteImages };
}

function attachmentOut(attachment: Attachment, index: number): AttachmentOut {
  return {
    index,
    filename: attachment.filename ?? null,
    contentType: attachment.contentType,
    size: attachment.size,
    inline: attachment.contentDisposition === 'inline' || attachment.related === true,
    embedded: attachment.related === true,
  };
}

export async function parseMessage(raw: Buffer): Promise<ParsedMail> {
  // cid: images become data: URIs, so inline images show without a second request.
  return simpleParser(raw, { skipTextToHtml: true });
}

/** The full view of a message. */
export async function viewMessage(raw: Buffer, options: { images: boolean }) {
  const parsed = await parseMessage(raw);
  const html = typeof parsed.html === 'string' ? sanitizeMailHtml(parsed.html, options.images) : null;
  return {
    subject: parsed.subject ?? '',
    from: addresses(parsed.from),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    bcc: addresses(parsed.bcc), // only a draft or a sent copy of one's own has it
    replyTo: addresses(parsed.replyTo),
    date: parsed.date?.toISOString() ?? null,
    messageId: parsed.messageId ?? null,
    inReplyTo: parsed.inReplyTo ?? null,
    references: typeof parsed.references === 'string' ? [parsed.references] : (parsed.references ?? []),
    text: parsed.text ?? null,
    html: html?.html ?? null,
    remoteImages: html?.remoteImages ?? 0,
    attachments: parsed.attachments.map(attachmentOut),
  };
}

/** RFC 6266: an ASCII fallback name and the exact name in RFC 8187 encoding. */
export function contentDisposition(filename: string | null, index: number): string {
  const name = filename ?? `attachment-${index + 1}`;
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
