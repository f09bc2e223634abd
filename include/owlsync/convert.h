/* owlsync convert: a payload of the vendor's Export API (its JSON list of
 * dump() INSERT statements) read as rows, never run, and published as a
 * signed bundle by the exporter's own stages. */
#ifndef OWLSYNC_CONVERT_H
#define OWLSYNC_CONVERT_H

#include "owlsync/config.h"
#include "owlsync/error.h"
#include "owlsync/exporter.h"

/* The type a converted column carries in the manifest: the payload's values
 * are untyped literals, and the target's column types decide how they load. */
#define CONVERT_TYPE "unknown"

/* Reads the payload from fd (what names it in messages: a path, or "-" for
 * stdin) and publishes its rows as job's bundle (exporter_publish). Statements
 * must be of the vendor's dump() shape (vendor_parse) and name one schema and
 * configured tables (job->tables when not empty); the datasets are those of
 * the rows' dataset column; columns listed as generated are left out. A
 * regular file's mtime is the bundle's snapshot time, else the time now.
 * Bounds: the payload at most [import] max_bundle_size bytes, its rows
 * max_unpacked_size, a statement and its row COPYTEXT_MAX_ROW. Anything
 * refused is OWL_EUSAGE naming the statement (its index from 1) and the byte,
 * and nothing is published. */
int convert_run(const cfg *c, const exporter_job *job, int fd, const char *what, exporter_result *res, owl_err *err);

#endif
