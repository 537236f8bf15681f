// The Directory role: domains, users and their credentials (the password hash), quotas and rights.
// Not to be confused with ../directory.ts, the grouped store's map of users to PostgreSQL groups.
import type { Domain, User } from '../types.js';
import { roleMethods } from './methods.js';

export interface Directory {
  addDomain(name: string): Promise<Domain>;
  getDomain(name: string): Promise<Domain | undefined>;
  listDomains(): Promise<Domain[]>;
  /** Fails with StoreError('conflict') while the domain still has users. */
  removeDomain(name: string): Promise<void>;

  // Users. Addresses are stored lower-case; lookups are case-insensitive.
  /** A new user with the default mailboxes (DEFAULT_MAILBOXES). */
  addUser(input: { address: string; passwordHash: string; quotaBytes?: number; isAdmin?: boolean }): Promise<User>;
  getUser(address: string): Promise<User | undefined>;
  getUserById(id: number): Promise<User | undefined>;
  listUsers(domain?: string): Promise<User[]>;
  removeUser(address: string): Promise<void>;
  setPassword(address: string, passwordHash: string): Promise<void>;
  /** The webmail's From name (migration 011); '' clears it. */
  setDisplayName(address: string, displayName: string): Promise<void>;
  setQuota(address: string, quotaBytes: number): Promise<void>;
  /** A disabled user can log in nowhere and receives no mail. */
  setUserDisabled(address: string, disabled: boolean): Promise<void>;
  setUserAdmin(address: string, isAdmin: boolean): Promise<void>;
  /** Users whose address contains `q` (case-insensitive), ordered by address, one page and the total. */
  searchUsers(query: { q?: string; offset?: number; limit?: number }): Promise<{ users: User[]; total: number }>;
}

export const DIRECTORY_METHODS = roleMethods<Directory>()([
  'addDomain',
  'getDomain',
  'listDomains',
  'removeDomain',
  'addUser',
  'getUser',
  'getUserById',
  'listUsers',
  'removeUser',
  'setPassword',
  'setDisplayName',
  'setQuota',
  'setUserDisabled',
  'setUserAdmin',
  'searchUsers',
]);
