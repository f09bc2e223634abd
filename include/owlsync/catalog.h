/* owlsync catalog: what a server says about the metastore's tables (columns and
 * their types, keys, foreign keys, privileges, sizes), as typed results. Every
 * query of pg_catalog that owlsync makes is here. */
#ifndef OWLSYNC_CATALOG_H
#define OWLSYNC_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "owlsync/db.h"
#include "owlsync/error.h"

/* A sequence whose values a column takes: owned by it (serial, identity) or
 * called by its default (nextval of a sequence of its own). */
typedef struct catalog_sequence {
    char *oid;        /* as text, to pass back as $n::oid::regclass */
    char *name;       /* regclass text, for messages */
} catalog_sequence;

typedef struct catalog_column {
    char *name;
    char *type;       /* format_type() text, e.g. "text", "numeric(10,2)" */
    char *base_type;  /* the same without its modifier ("numeric"), for casts */
    char identity;    /* 'a' GENERATED ALWAYS, 'd' BY DEFAULT, 0 none */
    bool generated;   /* a generated (stored) column: the server computes it */
    bool serial;      /* a sequence stands behind it (serial or identity) */
    bool exact_eq;    /* "=" holds only for the same text: compared as it is,
                       * where other types (numeric 1.0 = 1.00, float 0 = -0,
                       * jsonb, interval, bpchar, json, domains) compare as text */
    bool not_null;
    catalog_sequence *sequences; /* the sequences behind it */
    size_t nsequences;
} catalog_column;

typedef struct catalog_table {
    catalog_column *columns; /* in attnum order; none when the table is missing */
    size_t ncolumns;
    char kind;               /* 'r' ordinary, 'p' partitioned */
    bool row_security;       /* row-level security is enabled on it */
    bool insert_triggers;    /* an enabled trigger of its own fires on INSERT */
    bool rules;              /* it has rewrite rules */
} catalog_table;

/* The live columns of schema.table (an ordinary or partitioned table), with
 * the sequences behind them, and what the table does to rows written to it.
 * A table that does not exist, or that this role cannot see, has no columns.
 * Free the result with catalog_table_free. */
int catalog_columns(db_conn *c, const char *schema, const char *table, catalog_table *out, owl_err *err);

/* The same for n tables at once (outs[i] for names[i]), in three statements
 * whatever n: what an import plans its tables from. */
int catalog_tables(db_conn *c, const char *schema, const char *const *names, size_t n, catalog_table *outs,
                   owl_err *err);
void catalog_table_free(catalog_table *t);

/* The column called name, or NULL. */
const catalog_column *catalog_find_column(const catalog_table *t, const char *name);

/* A unique key: its columns, in index order. */
typedef struct catalog_key {
    char **columns;
    size_t ncolumns;
    bool primary;
    bool not_null;    /* a primary key, or every column NOT NULL */
    bool immediate;   /* checked as rows go in (not DEFERRABLE) */
} catalog_key;

/* The valid unique indexes of schema.table without predicate or expression,
 * the primary key first. Free with catalog_keys_free. */
int catalog_unique_keys(db_conn *c, const char *schema, const char *table, catalog_key **keys, size_t *n,
                        owl_err *err);
void catalog_keys_free(catalog_key *keys, size_t n);

/* The unique keys of n tables at once, in one statement: outs[i] for names[i]
 * (each freed with catalog_keys_free(outs[i].keys, outs[i].nkeys)). */
typedef struct catalog_table_keys {
    catalog_key *keys;
    size_t nkeys;
} catalog_table_keys;
int catalog_unique_keys_of(db_conn *c, const char *schema, const char *const *names, size_t n,
                           catalog_table_keys *outs, owl_err *err);

/* A foreign key between two tables of one schema (or of a table and itself):
 * child's columns reference parent's, pairwise. */
typedef struct catalog_fk {
    char *name;
    char *child, *parent;
    char **child_columns, **parent_columns;
    size_t ncolumns;
} catalog_fk;

/* The foreign keys among the tables of schema. Free with catalog_fks_free. */
int catalog_foreign_keys(db_conn *c, const char *schema, catalog_fk **fks, size_t *n, owl_err *err);
void catalog_fks_free(catalog_fk *fks, size_t n);

/* Orders n tables (by name) so that each comes after every table of the list
 * it references (fks; others are ignored), keeping their order otherwise:
 * order[k] is the index of the k-th. Tables in a cycle follow the rest in
 * their own order; returns false when there was one. Pure. */
bool catalog_parents_first(const char *const *names, size_t n, const catalog_fk *fks, size_t nfks, size_t *order);

/* Whether a target column of type target may not hold every value of a source
 * column of type source (format_type() texts): a smaller numeric precision or
 * scale, a smaller integer, real for double precision, a shorter character
 * type, timestamp or date for timestamp with time zone. NULL when it holds
 * them all (or owlsync cannot tell), else what is lost ("rounded",
 * "truncated", ...). Pure. */
const char *catalog_narrower(const char *source, const char *target);

/* Whether schema.table exists (*exists) and this role holds every privilege of
 * privs ("SELECT" or "SELECT, INSERT, UPDATE, DELETE") on it (*granted). */
int catalog_table_privilege(db_conn *c, const char *schema, const char *table, const char *privs, bool *exists,
                            bool *granted, owl_err *err);

/* Whether schema.table exists (*exists), and the privileges of privs
 * (comma-separated: "SELECT,INSERT"; "A|B" when either will do) this role
 * lacks on it, as "INSERT, UPDATE" into lacking ("" when none). */
int catalog_table_lacks(db_conn *c, const char *schema, const char *table, const char *privs, bool *exists,
                        char *lacking, size_t size, owl_err *err);

/* The same for a sequence by oid (a catalog_sequence's): USAGE, SELECT, UPDATE. */
int catalog_sequence_lacks(db_conn *c, const char *oid, const char *privs, char *lacking, size_t size, owl_err *err);

/* Whether this role may create temporary tables in the database (*temp) and
 * use schema (*usage: false when it does not exist). */
int catalog_session_access(db_conn *c, const char *schema, bool *temp, bool *usage, owl_err *err);

/* The size of schema.table in blocks (0 when it does not exist). */
int catalog_table_blocks(db_conn *c, const char *schema, const char *table, uint64_t *blocks, owl_err *err);

#endif
