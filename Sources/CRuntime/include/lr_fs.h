#ifndef LR_FS_H
#define LR_FS_H

/* Atomically exchanges two paths (Linux renameat2 with RENAME_EXCHANGE). Returns 0, or -1 with
   errno set (EINVAL or ENOSYS where the filesystem or kernel cannot exchange). */
int lr_rename_exchange(const char *a, const char *b);

#endif
