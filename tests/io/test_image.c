/* io/image: resampling (the antialiased triangle filter, PIL's rule) against hand-computed
 * values, the identity at equal size, and the center crop. */
#include "beit/image.h"
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static void test_resample(void) {
    /* 1 x 2 -> 1 x 4 (upscale, triangle radius 1): centres 0.25, 0.75, 1.25, 1.75
     * weights on pixels (0.5, 1.5): (1,0) (0.75,0.25) (0.25,0.75) (0,1) -> 0, 63.75, 191.25, 255 */
    uint8_t src[2] = {0, 255}, dst[4];
    image_resample(src, 1, 2, 1, 0, 0, 2, 1, dst, 1, 4);
    t_ok(dst[0] == 0 && dst[1] == 64 && dst[2] == 191 && dst[3] == 255,
         "resample: 2 -> 4 upscale by hand (%d %d %d %d)", dst[0], dst[1], dst[2], dst[3]);
    /* 1 x 4 -> 1 x 2 (shrink by 2: triangle radius 2): output 0 centre 1.0, pixel centres
     * 0.5 1.5 2.5 -> weights .75 .75 .25 (normalised /1.75); output 1 centre 3.0: pixels
     * 1.5 2.5 3.5 -> .25 .75 .75 */
    uint8_t s4[4] = {10, 20, 100, 200}, d2[2];
    image_resample(s4, 1, 4, 1, 0, 0, 4, 1, d2, 1, 2);
    double e0 = (0.75 * 10 + 0.75 * 20 + 0.25 * 100) / 1.75, e1 = (0.25 * 20 + 0.75 * 100 + 0.75 * 200) / 1.75;
    t_ok(d2[0] == (uint8_t)lrint(e0) && d2[1] == (uint8_t)lrint(e1),
         "resample: 4 -> 2 antialiased by hand (%d %d, want %.2f %.2f)", d2[0], d2[1], e0, e1);
    /* identity size is exact */
    uint8_t id_src[12], id_dst[12];
    for (int i = 0; i < 12; i++) id_src[i] = (uint8_t)(i * 21);
    image_resample(id_src, 2, 2, 3, 0, 0, 2, 2, id_dst, 2, 2);
    t_ok(memcmp(id_src, id_dst, 12) == 0, "resample: same size is the identity");
    /* center crop: 4 wide x 2 high, columns red | green green | blue -> 2x2 all green */
    uint8_t wide[2 * 4 * 3], sq[2 * 2 * 3];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) {
            uint8_t *p = wide + (y * 4 + x) * 3;
            p[0] = x == 0 ? 255 : 0;
            p[1] = (x == 1 || x == 2) ? 255 : 0;
            p[2] = x == 3 ? 255 : 0;
        }
    image_center_crop_resize(wide, 2, 4, 3, sq, 2);
    int green = 1;
    for (int i = 0; i < 4; i++) green &= sq[i * 3] == 0 && sq[i * 3 + 1] == 255 && sq[i * 3 + 2] == 0;
    t_ok(green, "center crop: the middle square of a red|green|blue strip is all green");
}

int main(void) {
    test_resample();
    return t_done();
}
