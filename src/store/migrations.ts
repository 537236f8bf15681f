// Numbered schema migrations, applied in order at start. Written with Kysely's schema
// builder so the same steps run on SQLite and PostgreSQL.
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { migration007Groups } from './directory.js';

export type Dialect = 'sqlite' | 'postgres';

function idColumn(dialect: Dialect) {
  return dialect === 'sqlite' ? ('integer' as const) : ('bigserial' as const);
}

function migration001(dialect: Dialect): Migration {
  const blob = dialect === 'sqlite' ? 'blob' : 'bytea';
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('domains')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('users')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('address', 'text', (c) => c.notNull().unique())
        .addColumn('domain_id', 'bigint', (c) => c.notNull().references('domains.id'))
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('quota_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('used_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('mailboxes')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('uidvalidity', 'bigint', (c) => c.notNull())
        .addColumn('uidnext', 'bigint', (c) => c.notNull().defaultTo(1))
        .addColumn('highest_modseq', 'bigint', (c) => c.notNull().defaultTo(1))
        .addColumn('recent_uid', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('special_use', 'text')
        .addColumn('subscribed', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('mailboxes_user_name', ['user_id', 'name'])
        .execute();
      await db.schema
        .createTable('blobs')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('data', blob, (c) => c.notNull())
        .addColumn('refs', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('meta', 'text')
        .execute();
      await db.schema
        .createTable('messages')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('mailbox_id', 'bigint', (c) => c.notNull().references('mailboxes.id').onDelete('cascade'))
        .addColumn('uid', 'bigint', (c) => c.notNull())
        .addColumn('blob_hash', 'text', (c) => c.notNull().references('blobs.hash'))
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('internal_date', 'bigint', (c) => c.notNull())
        .addColumn('flags', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('seen', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('deleted', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('modseq', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('messages_mailbox_uid', ['mailbox_id', 'uid'])
        .execute();
      await db.schema.createIndex('messages_mailbox_modseq').on('messages').columns(['mailbox_id', 'modseq']).execute();
      await db.schema.createIndex('messages_mailbox_seen').on('messages').columns(['mailbox_id', 'seen']).execute();
      await db.schema
        .createTable('expunged')
        .addColumn('mailbox_id', 'bigint', (c) => c.notNull().references('mailboxes.id').onDelete('cascade'))
        .addColumn('uid', 'bigint', (c) => c.notNull())
        .addColumn('modseq', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('expunged_pk', ['mailbox_id', 'uid'])
        .execute();
      await db.schema
        .createTable('changes')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('user_id', 'bigint', (c) => c.notNull())
        .addColumn('mailbox_id', 'bigint')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('txns')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('outbound')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('sender', 'text', (c) => c.notNull())
        .addColumn('recipient', 'text', (c) => c.notNull())
        .addColumn('domain', 'text', (c) => c.notNull())
        .addColumn('blob_hash', 'text', (c) => c.notNull().references('blobs.hash'))
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('next_attempt_at', 'bigint', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('lease_owner', 'text')
        .addColumn('lease_until', 'bigint')
        .execute();
      await db.schema.createIndex('outbound_due').on('outbound').columns(['status', 'next_attempt_at']).execute();
      await db.schema
        .createTable('meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  };
}

function migration002(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('members')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('requested_state', 'text')
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('addresses', 'text', (c) => c.notNull())
        .addColumn('load', 'text', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('beat_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  };
}

function migration003(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('outbound').addColumn('warned', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('dkim_keys')
        .addColumn('domain', 'text', (c) => c.primaryKey())
        .addColumn('selector', 'text', (c) => c.notNull())
        .addColumn('private_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  };
}

function migration004(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('web_sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('csrf_token', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('web_sessions_user').on('web_sessions').column('user_id').execute();
    },
  };
}

/** The audit log of operator actions (issue 9): who did what to what, when, from which node. */
function migration006(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('audit_log')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('detail', 'text')
        .addColumn('node', 'text')
        .execute();
      await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    },
  };
}

/**
 * The file drive (issue 8): a tree of folders and files per user, file contents in chunks
 * (so any node serves any file), and uploads in progress (resumable).
 */
function migration005(dialect: Dialect): Migration {
  const blob = dialect === 'sqlite' ? 'blob' : 'bytea';
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('drive_nodes')
        .addColumn('id', idColumn(dialect), (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
        // 0 for the root: a NULL would not clash with another NULL in the unique constraint.
        .addColumn('parent_id', 'bigint', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('content_type', 'text')
        // Where a file's chunks are (drive_chunks.content_id); null for a folder.
        .addColumn('content_id', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('drive_nodes_user_parent_name', ['user_id', 'parent_id', 'name'])
        .execute();
      await db.schema
        .createTable('drive_chunks')
        .addColumn('content_id', 'bigint', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
        // Byte offset of the chunk in the file, and its length.
        .addColumn('start', 'bigint', (c) => c.notNull())
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('data', blob, (c) => c.notNull())
        .addPrimaryKeyConstraint('drive_chunks_pk', ['content_id', 'seq'])
        .execute();
      // For the cascade when a user goes.
      await db.schema.createIndex('drive_chunks_user').on('drive_chunks').column('user_id').execute();
      await db.schema
        .createTable('drive_uploads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('parent_id', 'bigint', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('content_type', 'text')
        .addColumn('content_id', 'bigint', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('received', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('next_seq', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('drive_uploads_user').on('drive_uploads').columns(['user_id', 'expires_at']).execute();
    },
  };
}

/**
 * The parse cache moves out of the blobs table: the existing entries are copied, then the column
 * goes (a rewrite of the table on SQLite, once).
 */
function migration008(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('blob_meta')
        .addColumn('hash', 'text', (c) => c.primaryKey())
        .addColumn('meta', 'text', (c) => c.notNull())
        .execute();
      await sql`insert into blob_meta (hash, meta) select hash, meta from blobs where meta is not null`.execute(db);
      await db.schema.alterTable('blobs').dropColumn('meta').execute();
    },
  };
}

/**
 * Full-text search over bodies (issue 21), by blob hash. SQLite: blob_text numbers the hashes
 * and a contentless FTS5 table holds their words under that number. PostgreSQL: a tsvector
 * per hash with a GIN index. Blobs already stored are indexed here, once.
 */
function migration009(dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      if (dialect === 'sqlite') {
        await db.schema
          .createTable('blob_text')
          .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
          .addColumn('hash', 'text', (c) => c.notNull().unique())
          .addColumn('partial', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await sql`create virtual table blob_fts using fts5(body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`.execute(db);
        // A blob's words go with it, whoever deletes it.
        await sql`create trigger blobs_text_gone after delete on blobs begin delete from blob_text where hash = old.hash; end`.execute(db);
        await sql`create trigger blob_text_gone after delete on blob_text begin delete from blob_fts where rowid = old.id; end`.execute(db);
      } else {
        await db.schema
          .createTable('blob_text')
          .addColumn('hash', 'text', (c) => c.primaryKey().references('blobs.hash').onDelete('cascade'))
          .addColumn('tsv', sql`tsvector`, (c) => c.notNull())
          .addColumn('partial', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await sql`create index blob_text_tsv on blob_text using gin (tsv)`.execute(db);
      }
      // Messages whose text was cut short (text-index.ts), for searches that must not miss them.
      await sql`create index blob_text_partial on blob_text (hash) where partial = 1`.execute(db);
      // From the hits to their messages without reading the whole mailbox.
      await db.schema.createIndex('messages_blob_hash').on('messages').column('blob_hash').execute();
      const { indexAllBlobs } = await import('./text-index.js');
      await indexAllBlobs(db, dialect);
    },
  };
}

/**
 * IMAP subscriptions to names with no mailbox (RFC 3501 6.3.6: a subscription outlives its
 * mailbox). A subscribed mailbox that exists keeps the flag on its own row.
 */
function migration010Subscriptions(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('subscriptions')
        .addColumn('user_id', 'bigint', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('subscriptions_pk', ['user_id', 'name'])
        .execute();
    },
  };
}

/** The name a user's webmail puts in From (issue 21), kept with the user so every browser sees it. */
function migration011DisplayName(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('display_name', 'text', (c) => c.notNull().defaultTo('')).execute();
    },
  };
}

/**
 * Full-text indexing leaves the delivery transaction (issue 19): a write that stores a blob only
 * queues its hash here, in the same transaction, and the indexer of text-indexer.ts indexes it
 * after the commit, deleting the row in the transaction that adds the words. A crash leaves the
 * row, so nothing stays unindexed.
 */
function migration012TextPending(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.createTable('text_pending').addColumn('hash', 'text', (c) => c.primaryKey()).execute();
    },
  };
}

/**
 * Tombstones are kept for QRESYNC and never pruned, and every catch-up of a mailbox index asks for
 * those above a modseq (Store.expungedSince): by (mailbox_id, modseq), not a scan of the mailbox's
 * every expunge so far.
 */
function migration013ExpungedModseq(): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.createIndex('expunged_mailbox_modseq').on('expunged').columns(['mailbox_id', 'modseq']).execute();
    },
  };
}

export function migrations(dialect: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      return { '001_initial': migration001(dialect), '002_members': migration002(), '003_outbound_delivery': migration003(), '004_web_sessions': migration004(), '005_drive': migration005(dialect), '006_audit': migration006(dialect), '007_groups': migration007Groups(), '008_blob_meta': migration008(), '009_full_text': migration009(dialect), '010_imap_subscriptions': migration010Subscriptions(), '011_display_name': migration011DisplayName(), '012_text_pending': migration012TextPending(), '013_expunged_modseq': migration013ExpungedModseq() };
    },
  };
}
