/* Consumer of an installed cactor: uses the library and the ei API that
 * cactor.h exposes. Prints one line and exits 0 when all is well. */
#include <stdio.h>
#include <string.h>

#include <cactor.h>

int main(void)
{
    ei_x_buff x;
    int index = 0, version = 0, arity = 0;

    if (strcmp(ca_errname(CA_ESRCH), "esrch") != 0 || ca_strerror(CA_EINVAL) == NULL) {
        fprintf(stderr, "consumer: unexpected error names\n");
        return 1;
    }
    if (ei_x_new_with_version(&x) != 0 || ei_x_encode_tuple_header(&x, 2) != 0 ||
        ei_x_encode_atom(&x, "error") != 0 || ei_x_encode_atom(&x, ca_errname(CA_ESRCH)) != 0) {
        fprintf(stderr, "consumer: ei encoding failed\n");
        return 1;
    }
    if (ei_decode_version(x.buff, &index, &version) != 0 ||
        ei_decode_tuple_header(x.buff, &index, &arity) != 0 || arity != 2) {
        fprintf(stderr, "consumer: ei decoding failed\n");
        return 1;
    }
    ei_x_free(&x);
    printf("consumer: cactor %d.%d.%d ok (%s)\n", CA_VERSION_MAJOR, CA_VERSION_MINOR,
           CA_VERSION_PATCH, ca_strerror(CA_ESRCH));
    return 0;
}
