// What a file-system error on the credential file means to the people who see it: a KeygateFault
// whose message says which file, what is wrong with it here and what to do, instead of a bare
// "EACCES: permission denied, open '…/credentials.yaml.lock'" answered as "check the store
// connection". A folder keygate may not write (a read-only Secret mount, a file owned by
// another user) is KG_ERR_STORE_READ_ONLY: a write that can never succeed on this instance,
// answered 405 by the admin API. Anything else (disk full, I/O error, a missing folder) is
// KG_ERR_STORE_UNAVAILABLE.
import { dirname } from 'node:path';
import { KeygateFault } from '../../errors/fault.js';

const READ_ONLY: Record<string, (dir: string) => string> = {
  EROFS: (dir) => `${dir} is on a read-only file system`,
  EACCES: (dir) => `keygate's user may not write in ${dir}`,
  EPERM: (dir) => `keygate's user may not write in ${dir}`,
};

const WHY: Record<string, string> = {
  ENOENT: 'its folder does not exist',
  ENOTDIR: 'a part of its path is not a folder',
  EISDIR: 'it is a folder',
  ENOSPC: 'the disk is full',
  EDQUOT: 'the disk quota is used up',
  EIO: 'an I/O error',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
};

/** An error from the file system (it carries an errno code and the call that failed). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  const e = err as NodeJS.ErrnoException | undefined;
  return !(err instanceof KeygateFault) && typeof e?.code === 'string' && typeof e.syscall === 'string';
}

/** A failed write of `file` (or of its lock or temporary file, which live in its folder). */
export function writeFault(file: string, err: NodeJS.ErrnoException & { code: string }): KeygateFault {
  const readOnly = READ_ONLY[err.code];
  if (readOnly) return new KeygateFault('KG_ERR_STORE_READ_ONLY', `the credential file ${file} is read-only here (${err.code}: ${readOnly(dirname(file))}); change credentials where the file is managed, or make its folder writable for keygate`);
  return new KeygateFault('KG_ERR_STORE_UNAVAILABLE', `cannot write the credential file ${file}: ${WHY[err.code] ?? err.message} (${err.code})`);
}

export function readFault(file: string, err: NodeJS.ErrnoException & { code: string }): KeygateFault {
  return new KeygateFault('KG_ERR_STORE_UNAVAILABLE', `cannot read the credential file ${file}: ${WHY[err.code] ?? err.message} (${err.code})`);
}
