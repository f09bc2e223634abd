/* resign: packs an unpacked bundle, edited by a test, into a bundle signed
 * with a trusted key: what a holder of a leaked signing key (or a source
 * configured by mistake) can produce. The import must judge such a bundle by
 * its content, since its signature holds.
 *
 * usage: resign SECRET_KEY DIR OUT
 *
 * DIR holds manifest.json and data/TABLE.tsv of each table it lists. Each
 * table's rows, bytes and blake2b are set from its data file (rows: lines),
 * key_id to the key's, the manifest written again and signed, and OUT written uncompressed with
 * the entries in the bundle's order. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "owlsync/bundle.h"
#include "owlsync/keys.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
        (buf = malloc((size_t)n + 1)) == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "resign: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void die(const owl_err *err)
{
    fprintf(stderr, "resign: %s\n", err->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    char path[4096], hex[KEYS_HASH_HEX_LEN + 1], sig[KEYS_SIGFILE_MAX];
    keys_secret *sk = NULL;
    keys_public pub;
    bundle_writer *w = NULL;
    json_t *root, *tables, *t;
    json_error_t jerr;
    size_t len, i, siglen;
    char *text, *mjson;
    owl_err err;
    int fd;

    if (argc != 4) {
        fprintf(stderr, "usage: resign SECRET_KEY DIR OUT\n");
        return 2;
    }
    if (keys_init(&err) < 0 || keys_load_secret(argv[1], &sk, &err) < 0)
        die(&err);
    keys_secret_public(sk, &pub);
    snprintf(path, sizeof(path), "%s/manifest.json", argv[2]);
    text = slurp(path, &len);
    root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (root == NULL || !json_is_array(tables = json_object_get(root, "tables"))) {
        fprintf(stderr, "resign: %s is not a manifest\n", path);
        return 1;
    }
    json_object_set_new(root, "key_id", json_string(pub.id));
    json_array_foreach(tables, i, t) {
        const char *file = json_string_value(json_object_get(t, "file"));
        keys_hash *h = keys_hash_new();
        size_t rows = 0;
        snprintf(path, sizeof(path), "%s/%s", argv[2], file != NULL ? file : "?");
        text = slurp(path, &len);
        for (size_t k = 0; k < len; k++)
            rows += text[k] == '\n';
        keys_hash_update(h, text, len);
        keys_hash_final(h, hex);
        keys_hash_free(h);
        free(text);
        json_object_set_new(t, "rows", json_integer((json_int_t)rows));
        json_object_set_new(t, "bytes", json_integer((json_int_t)len));
        json_object_set_new(t, "blake2b", json_string(hex));
    }
    mjson = json_dumps(root, JSON_PRESERVE_ORDER | JSON_COMPACT);
    err_set(&err, OWL_ERUNTIME, "out of memory");
    if (mjson == NULL || keys_sign(sk, (const unsigned char *)mjson, strlen(mjson), sig, &siglen, &err) < 0)
        die(&err);
    fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || bundle_writer_open(fd, BUNDLE_NONE, 0, 0, &w, &err) < 0 ||
        bundle_writer_add(w, "manifest.json", mjson, strlen(mjson), &err) < 0 ||
        bundle_writer_add(w, "manifest.sig", sig, siglen, &err) < 0)
        die(&err);
    json_array_foreach(tables, i, t) {
        const char *file = json_string_value(json_object_get(t, "file"));
        snprintf(path, sizeof(path), "%s/%s", argv[2], file);
        text = slurp(path, &len);
        if (bundle_writer_add(w, file, text, len, &err) < 0)
            die(&err);
        free(text);
    }
    if (bundle_writer_close(w, &err) < 0 || close(fd) < 0)
        die(&err);
    free(mjson);
    json_decref(root);
    keys_secret_free(sk);
    return 0;
}
