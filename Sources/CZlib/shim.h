// zlib (Debian: zlib1g-dev): deflate/inflate and CRC-32 for the PNG writer and reader.
#include <zlib.h>
