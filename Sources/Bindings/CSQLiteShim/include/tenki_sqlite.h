#ifndef TENKI_SQLITE_H
#define TENKI_SQLITE_H

/// Registers the "tenki-wal" VFS (once; later calls do nothing) and returns SQLITE_OK or an
/// SQLite error code. See tenki_sqlite_vfs.c.
int tenki_sqlite_register_vfs(void);

/// The VFS's name, for sqlite3_open_v2.
extern const char *const tenki_sqlite_vfs_name;

/// Writes the file's dirty pages to the device, `piece` bytes at a time, waiting for each piece
/// (sync_file_range: no flush of the device's cache, no metadata). Returns 0 or an errno.
int tenki_write_back(int fd, long long piece);

#endif
