/* A test "vendor SDK" implementing the agent's fpv_* ABI (agent/drivers/fingerprint/vendor_sdk.py).
 * config = path of a queue file; each capture consumes its first line:
 *   "finger:<name>"  a press of finger <name> (a fixed 64x64 image derived from the name)
 *   "retry:<code>"   a spoiled press (2 too short, 3 off centre, 4 poor quality)
 *   "gone"           the device is unplugged
 * An empty queue means no finger. Records are ISO 19794-2 shaped: "FMR\0", " 20\0", length. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIDE 64
#define RECORD 40

struct fake { char queue[4096]; };

uint32_t fpv_abi_version(void) { return 1; }
uint32_t fpv_capabilities(void) { return 1u | 2u | 4u; }

int fpv_open(const char *config, void **handle) {
    struct fake *f = calloc(1, sizeof *f);
    if (!f || !config || strlen(config) >= sizeof f->queue) { free(f); return -3; }
    strcpy(f->queue, config);
    *handle = f;
    return 0;
}

void fpv_close(void *handle) { free(handle); }

static int next_line(struct fake *f, char *line, size_t size) {
    char content[8192];
    FILE *in = fopen(f->queue, "r");
    if (!in) return 0;
    size_t n = fread(content, 1, sizeof content - 1, in);
    fclose(in);
    content[n] = 0;
    char *end = strchr(content, '\n');
    if (n == 0 || !end) return 0;
    *end = 0;
    size_t len = strlen(content);
    if (len >= size) len = size - 1;
    memcpy(line, content, len);
    line[len] = 0;
    FILE *out = fopen(f->queue, "w");
    if (!out) return 0;
    fputs(end + 1, out);
    fclose(out);
    return 1;
}

int fpv_capture(void *handle, int timeout_ms, uint8_t *pixels, size_t capacity,
                int *width, int *height, int *quality) {
    char line[256];
    (void) timeout_ms;
    if (!next_line(handle, line, sizeof line)) return 1;
    if (strcmp(line, "gone") == 0) return -1;
    if (strncmp(line, "retry:", 6) == 0) return atoi(line + 6);
    if (strncmp(line, "finger:", 7) != 0 || capacity < SIDE * SIDE) return -3;
    uint32_t h = 2166136261u;
    for (const char *c = line + 7; *c; ++c) h = (h ^ (uint8_t) *c) * 16777619u;
    for (int i = 0; i < SIDE * SIDE; ++i) {
        h = h * 1103515245u + 12345u;
        pixels[i] = (uint8_t) (h >> 16);
    }
    *width = SIDE;
    *height = SIDE;
    *quality = 80;
    return 0;
}

int fpv_extract(void *handle, const uint8_t *pixels, int width, int height,
                uint8_t *record, size_t capacity, size_t *length) {
    (void) handle;
    if (width * height < 16 || capacity < RECORD) return -3;
    memset(record, 0, RECORD);
    memcpy(record, "FMR\0 20\0", 8);
    record[11] = RECORD;
    memcpy(record + 24, pixels, 16);
    *length = RECORD;
    return 0;
}

int fpv_match(void *handle, const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, int *score) {
    (void) handle;
    if (a_len != RECORD || b_len != RECORD || memcmp(a, "FMR\0", 4) || memcmp(b, "FMR\0", 4)) return -2;
    *score = memcmp(a + 24, b + 24, 16) == 0 ? 95 : 10;
    return 0;
}
