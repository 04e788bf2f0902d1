// The "tenki-wal" VFS: the platform's default VFS, except that a WAL file's writes are gathered
// in memory and reach the file in one write when SQLite syncs it.
//
// A commit appends each changed page to the WAL as two writes (a 24-byte frame header, then the
// page): a 95-page commit is 190 system calls before its one fsync. Gathered, it is six. Nothing
// is acknowledged differently: SQLite syncs the WAL at every commit under synchronous=FULL (the
// only mode the writer connection uses) and the buffer is written before that sync, so a commit
// is on disk exactly when it was before. Before a read that overlaps the buffer, a truncate, a
// size query or a file control, the buffer is written first, so the file reads as if every write
// had gone straight to it. A commit's frames are written out right after its commit frame (before
// SQLite publishes the commit to other connections), whatever the synchronous setting.
//
// What is still buffered when the connection gives up the WAL's write lock belongs to a
// transaction that rolled back (its pages spilled to the WAL, then were abandoned): it is thrown
// away, never written, since another writer may already be appending at those offsets. To see
// that lock (taken on the database file's shared memory), each WAL file is paired with its
// connection's database file; a WAL that cannot be paired is not buffered.
//
// Only connections that name this VFS use it (the writer, and the checkpointer, which appends
// nothing to the WAL); readers read committed frames, which a sync has already written.
#define _GNU_SOURCE
#include <sqlite3.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>
#include <pthread.h>
#include <string.h>
#include "tenki_sqlite.h"

const char *const tenki_sqlite_vfs_name = "tenki-wal";

enum { TENKI_WAL_BUFFER_MAX = 1 << 20 };   // written out when it would grow past 1 MiB

typedef struct TenkiFile {
    sqlite3_file base;
    sqlite3_file *real;         // the default VFS's file, allocated right after this struct
    int is_wal;
    unsigned char *buffer;      // paired WAL only: gathered writes, contiguous from buffer_start
    sqlite3_int64 buffer_start;
    int buffer_length;
    int buffer_capacity;
    int commit_page_next;       // the last write was a commit frame's header: its page is next
    const char *name;           // main database file: the name SQLite opened it by (its pager's)
    struct TenkiFile *wal;      // main database file: its connection's WAL, once opened
    struct TenkiFile *db;       // WAL: its connection's main database file
    struct TenkiFile *next;     // main database files open through this VFS, for pairing
} TenkiFile;

static pthread_mutex_t open_files_lock = PTHREAD_MUTEX_INITIALIZER;
static TenkiFile *open_main_files;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs tenki_vfs;
static sqlite3_io_methods tenki_io_methods;

// The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the length: SQLite itself
// never writes more than a page at once), so the buffer goes out in 64 KiB pieces.
enum { TENKI_WRITE_PIECE = 1 << 16 };

static int flush(TenkiFile *f) {
    int rc = SQLITE_OK;
    for (int done = 0; done < f->buffer_length && rc == SQLITE_OK; done += TENKI_WRITE_PIECE) {
        int piece = f->buffer_length - done < TENKI_WRITE_PIECE ? f->buffer_length - done : TENKI_WRITE_PIECE;
        rc = f->real->pMethods->xWrite(f->real, f->buffer + done, piece, f->buffer_start + done);
    }
    f->buffer_length = 0;
    return rc;
}

static void discard(TenkiFile *f) {
    f->buffer_length = 0;
    f->commit_page_next = 0;
}

static int t_close(sqlite3_file *file) {
    TenkiFile *f = (TenkiFile *)file;
    discard(f);   // a commit's frames are never left here: anything is an abandoned transaction's
    pthread_mutex_lock(&open_files_lock);
    if (f->db != NULL) f->db->wal = NULL;
    if (f->wal != NULL) f->wal->db = NULL;
    for (TenkiFile **p = &open_main_files; *p != NULL; p = &(*p)->next) {
        if (*p == f) { *p = f->next; break; }
    }
    pthread_mutex_unlock(&open_files_lock);
    int rc = f->real->pMethods->xClose(f->real);
    free(f->buffer);
    f->buffer = NULL;
    return rc;
}

static int t_read(sqlite3_file *file, void *out, int amount, sqlite3_int64 offset) {
    TenkiFile *f = (TenkiFile *)file;
    if (f->buffer_length > 0 && offset < f->buffer_start + f->buffer_length && offset + amount > f->buffer_start) {
        int rc = flush(f);
        if (rc != SQLITE_OK) return rc;
    }
    return f->real->pMethods->xRead(f->real, out, amount, offset);
}

static int buffered_write(TenkiFile *f, const void *data, int amount, sqlite3_int64 offset) {
    int contiguous = f->buffer_length > 0 && offset == f->buffer_start + f->buffer_length;
    if (f->buffer_length > 0 && (!contiguous || f->buffer_length + amount > TENKI_WAL_BUFFER_MAX)) {
        int rc = flush(f);
        if (rc != SQLITE_OK) return rc;
    }
    if (amount > TENKI_WRITE_PIECE) return f->real->pMethods->xWrite(f->real, data, amount, offset);
    if (f->buffer_length + amount > f->buffer_capacity) {
        int capacity = f->buffer_capacity == 0 ? 256 * 1024 : f->buffer_capacity;
        while (capacity < f->buffer_length + amount) capacity *= 2;
        unsigned char *grown = realloc(f->buffer, (size_t)capacity);
        if (grown == NULL) {
            int rc = flush(f);
            if (rc != SQLITE_OK) return rc;
            return f->real->pMethods->xWrite(f->real, data, amount, offset);
        }
        f->buffer = grown;
        f->buffer_capacity = capacity;
    }
    if (f->buffer_length == 0) f->buffer_start = offset;
    memcpy(f->buffer + f->buffer_length, data, (size_t)amount);
    f->buffer_length += amount;
    return SQLITE_OK;
}

// A WAL frame header is 24 bytes (pages are at least 512); bytes 4-7 hold the database size in
// pages for a commit frame and zero for any other (SQLite's WAL file format).
static int is_commit_frame_header(const void *data, int amount) {
    const unsigned char *h = data;
    return amount == 24 && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int t_write(sqlite3_file *file, const void *data, int amount, sqlite3_int64 offset) {
    TenkiFile *f = (TenkiFile *)file;
    if (!f->is_wal || f->db == NULL) return f->real->pMethods->xWrite(f->real, data, amount, offset);
    int commit_page = f->commit_page_next && amount != 24;
    f->commit_page_next = is_commit_frame_header(data, amount);
    int rc = buffered_write(f, data, amount, offset);
    if (rc == SQLITE_OK && commit_page) rc = flush(f);
    return rc;
}

static int t_truncate(sqlite3_file *file, sqlite3_int64 size) {
    TenkiFile *f = (TenkiFile *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int t_sync(sqlite3_file *file, int flags) {
    TenkiFile *f = (TenkiFile *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int t_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    TenkiFile *f = (TenkiFile *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int t_lock(sqlite3_file *file, int level) {
    TenkiFile *f = (TenkiFile *)file;
    return f->real->pMethods->xLock(f->real, level);
}

static int t_unlock(sqlite3_file *file, int level) {
    TenkiFile *f = (TenkiFile *)file;
    return f->real->pMethods->xUnlock(f->real, level);
}

static int t_check_reserved_lock(sqlite3_file *file, int *out) {
    TenkiFile *f = (TenkiFile *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int t_file_control(sqlite3_file *file, int op, void *arg) {
    TenkiFile *f = (TenkiFile *)file;
    int rc = flush(f);
    if (rc != SQLITE_OK) return rc;
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int t_sector_size(sqlite3_file *file) {
    TenkiFile *f = (TenkiFile *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int t_device_characteristics(sqlite3_file *file) {
    TenkiFile *f = (TenkiFile *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

// The default VFS's files all have version-3 methods; these guards only keep a VFS with fewer
// from being called through a missing pointer.
static int has_version(TenkiFile *f, int version) { return f->real->pMethods->iVersion >= version; }

static int t_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out) {
    TenkiFile *f = (TenkiFile *)file;
    if (!has_version(f, 2)) return SQLITE_IOERR;
    return f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}

// Offset 0 of the shared-memory locks is the WAL's write lock (SQLite's WAL_WRITE_LOCK).
static int t_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    TenkiFile *f = (TenkiFile *)file;
    if (!has_version(f, 2)) return SQLITE_IOERR;
    int rc = f->real->pMethods->xShmLock(f->real, offset, n, flags);
    if (rc == SQLITE_OK && offset == 0 && (flags & SQLITE_SHM_UNLOCK) && (flags & SQLITE_SHM_EXCLUSIVE) && f->wal != NULL) {
        discard(f->wal);
    }
    return rc;
}

static void t_shm_barrier(sqlite3_file *file) {
    TenkiFile *f = (TenkiFile *)file;
    if (!has_version(f, 2)) return;
    f->real->pMethods->xShmBarrier(f->real);
}

static int t_shm_unmap(sqlite3_file *file, int delete_flag) {
    TenkiFile *f = (TenkiFile *)file;
    if (!has_version(f, 2)) return SQLITE_OK;
    return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

static int t_fetch(sqlite3_file *file, sqlite3_int64 offset, int amount, void **out) {
    TenkiFile *f = (TenkiFile *)file;
    int rc = flush(f);
    if (rc != SQLITE_OK) return rc;
    if (!has_version(f, 3)) { *out = NULL; return SQLITE_OK; }
    return f->real->pMethods->xFetch(f->real, offset, amount, out);
}

static int t_unfetch(sqlite3_file *file, sqlite3_int64 offset, void *page) {
    TenkiFile *f = (TenkiFile *)file;
    if (!has_version(f, 3)) return SQLITE_OK;
    return f->real->pMethods->xUnfetch(f->real, offset, page);
}

static int t_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags) {
    (void)vfs;
    TenkiFile *f = (TenkiFile *)file;
    memset(f, 0, sizeof(TenkiFile));
    f->real = (sqlite3_file *)&f[1];
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || f->real->pMethods == NULL) {
        // SQLite calls xClose only on a file whose pMethods is set.
        if (f->real->pMethods != NULL) f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    // The pager opens its database file by a name whose memory it also derives the WAL's name
    // from: sqlite3_filename_database(WAL name) is that same pointer, so it pairs the two files
    // of one connection even when several connections open the same path.
    pthread_mutex_lock(&open_files_lock);
    if ((flags & SQLITE_OPEN_MAIN_DB) && name != NULL) {
        f->name = name;
        f->next = open_main_files;
        open_main_files = f;
    } else if (f->is_wal && name != NULL) {
        const char *database = sqlite3_filename_database(name);
        for (TenkiFile *m = open_main_files; m != NULL; m = m->next) {
            if (m->name == database && m->wal == NULL) {
                m->wal = f;
                f->db = m;
                break;
            }
        }
    }
    pthread_mutex_unlock(&open_files_lock);
    f->base.pMethods = &tenki_io_methods;
    return SQLITE_OK;
}

int tenki_sqlite_register_vfs(void) {
    static int registered = 0;
    if (registered) return SQLITE_OK;   // callers serialise the first call (see SQLiteConnection)
    int rc = sqlite3_initialize();
    if (rc != SQLITE_OK) return rc;
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL) return SQLITE_ERROR;
    tenki_vfs = *real_vfs;   // every other method is the default VFS's, with its pAppData
    tenki_vfs.pNext = NULL;
    tenki_vfs.zName = tenki_sqlite_vfs_name;
    tenki_vfs.szOsFile = (int)sizeof(TenkiFile) + real_vfs->szOsFile;
    tenki_vfs.xOpen = t_open;

    tenki_io_methods.iVersion = 3;
    tenki_io_methods.xClose = t_close;
    tenki_io_methods.xRead = t_read;
    tenki_io_methods.xWrite = t_write;
    tenki_io_methods.xTruncate = t_truncate;
    tenki_io_methods.xSync = t_sync;
    tenki_io_methods.xFileSize = t_file_size;
    tenki_io_methods.xLock = t_lock;
    tenki_io_methods.xUnlock = t_unlock;
    tenki_io_methods.xCheckReservedLock = t_check_reserved_lock;
    tenki_io_methods.xFileControl = t_file_control;
    tenki_io_methods.xSectorSize = t_sector_size;
    tenki_io_methods.xDeviceCharacteristics = t_device_characteristics;
    tenki_io_methods.xShmMap = t_shm_map;
    tenki_io_methods.xShmLock = t_shm_lock;
    tenki_io_methods.xShmBarrier = t_shm_barrier;
    tenki_io_methods.xShmUnmap = t_shm_unmap;
    tenki_io_methods.xFetch = t_fetch;
    tenki_io_methods.xUnfetch = t_unfetch;

    rc = sqlite3_vfs_register(&tenki_vfs, 0);
    if (rc == SQLITE_OK) registered = 1;
    return rc;
}

int tenki_write_back(int fd, long long piece) {
#ifdef SYNC_FILE_RANGE_WRITE
    struct stat st;
    if (fstat(fd, &st) != 0) return errno;
    for (off_t offset = 0; offset < st.st_size; offset += piece) {
        if (sync_file_range(fd, offset, piece, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            return errno;
        }
    }
    return 0;
#else
    return fdatasync(fd) == 0 ? 0 : errno;
#endif
}
