/*
 * Runs spandsp's DTMF receiver over raw 16-bit little-endian 8 kHz mono PCM
 * and prints what it detects. Used by dsp/tests/detectors/spandsp.rs for the
 * legato vs spandsp comparison (issue 5); compiled at test time with
 * `cc dtmf_rx.c -lspandsp`.
 *
 * Usage: dtmf_rx [--permissive] [FILE]   (reads stdin without FILE)
 *
 * The receiver is configured the way FreeSWITCH's mod_spandsp does it by
 * default: dtmf_rx_init() with no callback, then dtmf_rx_parms() with every
 * argument at its "leave unchanged" value (-1, -1, -1, -100), so spandsp's
 * own defaults apply. With --permissive (the no-leak test of
 * tests/tests/dtmf_no_leak.rs: a far side that reads digits wherever it
 * can): no dial-tone filter, 12 dB of twist either way, a -45 dBm0
 * threshold. A realtime callback reports tone starts and ends.
 *
 * Output, one line per event:
 *   S <digit> <sample>   a digit started; <sample> is how many input samples
 *                        had been fed when spandsp reported it
 *   E <sample>           the digit ended
 *   D <digits>           last line: the digits a second receiver, without the
 *                        realtime callback, buffered (dtmf_rx_get()); spandsp
 *                        buffers nothing once a realtime callback is set, so
 *                        this cross-checks the first receiver's reports
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spandsp.h>

/* Samples fed so far; read by the callback to timestamp events. */
static uint64_t fed;

static void on_tone(void *user_data, int code, int level, int delay)
{
    (void) user_data;
    (void) level;
    (void) delay;
    if (code)
        printf("S %c %llu\n", code, (unsigned long long) fed);
    else
        printf("E %llu\n", (unsigned long long) fed);
}

int main(int argc, char **argv)
{
    FILE *in = stdin;
    int permissive = 0;
    if (argc > 1 && strcmp(argv[1], "--permissive") == 0) {
        permissive = 1;
        argc--;
        argv++;
    }
    if (argc > 1) {
        in = fopen(argv[1], "rb");
        if (in == NULL) {
            perror(argv[1]);
            return 2;
        }
    }
    dtmf_rx_state_t *rx = dtmf_rx_init(NULL, NULL, NULL);
    if (rx == NULL) {
        fprintf(stderr, "dtmf_rx_init failed\n");
        return 2;
    }
    if (permissive)
        dtmf_rx_parms(rx, 0, 12, 12, -45);
    else
        dtmf_rx_parms(rx, -1, -1, -1, -100);
    dtmf_rx_set_realtime_callback(rx, on_tone, NULL);
    dtmf_rx_state_t *buffered = dtmf_rx_init(NULL, NULL, NULL);
    if (buffered == NULL) {
        fprintf(stderr, "dtmf_rx_init failed\n");
        return 2;
    }
    if (permissive)
        dtmf_rx_parms(buffered, 0, 12, 12, -45);
    else
        dtmf_rx_parms(buffered, -1, -1, -1, -100);

    /* Fed one sample per call so event times are exact to the sample; the
     * receiver's decisions do not depend on how input is chunked (it works
     * on its own internal blocks). */
    uint8_t bytes[2];
    while (fread(bytes, 1, 2, in) == 2) {
        int16_t sample = (int16_t) (uint16_t) (bytes[0] | (bytes[1] << 8));
        dtmf_rx(rx, &sample, 1);
        dtmf_rx(buffered, &sample, 1);
        fed++;
    }
    char digits[4096];
    size_t n = dtmf_rx_get(buffered, digits, (int) sizeof(digits) - 1);
    digits[n] = '\0';
    printf("D %s\n", digits);
    dtmf_rx_free(rx);
    dtmf_rx_free(buffered);
    if (in != stdin)
        fclose(in);
    return 0;
}
