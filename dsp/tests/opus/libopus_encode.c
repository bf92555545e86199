/*
 * Times libopus's encoder over raw 16-bit little-endian mono PCM, 20 ms
 * frames, for the legato-dsp Opus comparison (dsp/tests/opus_vs_libopus.rs).
 * Compiled at test time with `cc -O2 libopus_encode.c -lopus` against
 * Debian's libopus-dev; never part of the legato build.
 *
 * usage: libopus_encode PCM RATE COMPLEXITY BITRATE voip|audio PASSES
 *
 * Each pass creates a fresh encoder and encodes every whole frame of the
 * file; only opus_encode() calls are timed. Prints one line per pass:
 *   P <pass> <nanoseconds for all frames> <frames> <bytes produced>
 */
#include <opus/opus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s PCM RATE COMPLEXITY BITRATE voip|audio PASSES\n", argv[0]);
    return 2;
  }
  const char *path = argv[1];
  int rate = atoi(argv[2]);
  int complexity = atoi(argv[3]);
  int bitrate = atoi(argv[4]);
  int app = strcmp(argv[5], "voip") == 0 ? OPUS_APPLICATION_VOIP : OPUS_APPLICATION_AUDIO;
  int passes = atoi(argv[6]);

  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long bytes = ftell(f);
  fseek(f, 0, SEEK_SET);
  size_t samples = (size_t)bytes / 2;
  int16_t *pcm = malloc(samples * sizeof *pcm);
  unsigned char *raw = malloc((size_t)bytes);
  if (!pcm || !raw || fread(raw, 1, (size_t)bytes, f) != (size_t)bytes) {
    fprintf(stderr, "cannot read %s\n", path);
    return 1;
  }
  fclose(f);
  for (size_t i = 0; i < samples; i++) {
    pcm[i] = (int16_t)(raw[2 * i] | (raw[2 * i + 1] << 8));
  }

  int frame = rate / 50;
  size_t frames = samples / (size_t)frame;
  unsigned char packet[1500];
  for (int p = 0; p < passes; p++) {
    int err = 0;
    OpusEncoder *enc = opus_encoder_create(rate, 1, app, &err);
    if (err != OPUS_OK) {
      fprintf(stderr, "opus_encoder_create: %s\n", opus_strerror(err));
      return 1;
    }
    opus_encoder_ctl(enc, OPUS_SET_BITRATE(bitrate));
    opus_encoder_ctl(enc, OPUS_SET_COMPLEXITY(complexity));
    int64_t total = 0;
    long produced = 0;
    for (size_t i = 0; i < frames; i++) {
      int64_t t0 = now_ns();
      int n = opus_encode(enc, pcm + i * (size_t)frame, frame, packet, (opus_int32)sizeof packet);
      total += now_ns() - t0;
      if (n < 0) {
        fprintf(stderr, "opus_encode: %s\n", opus_strerror(n));
        return 1;
      }
      produced += n;
    }
    printf("P %d %lld %zu %ld\n", p, (long long)total, frames, produced);
    opus_encoder_destroy(enc);
  }
  printf("V %s\n", opus_get_version_string());
  return 0;
}
