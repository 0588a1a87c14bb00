/* Linux's jhash2 (include/linux/jhash.h, Bob Jenkins' lookup3) over u32 words; src/lb has the TypeScript port. */
#ifndef XDPVS_JHASH_H
#define XDPVS_JHASH_H

#include <linux/types.h>

#define JHASH_INITVAL 0xdeadbeef

static __always_inline __u32 rol32(__u32 word, unsigned int shift)
{
	return (word << (shift & 31)) | (word >> ((-shift) & 31));
}

#define __jhash_mix(a, b, c)                    \
	{                                       \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	}

#define __jhash_final(a, b, c)                  \
	{                                       \
		c ^= b; c -= rol32(b, 14);      \
		a ^= c; a -= rol32(c, 11);      \
		b ^= a; b -= rol32(a, 25);      \
		c ^= b; c -= rol32(b, 16);      \
		a ^= c; a -= rol32(c, 4);       \
		b ^= a; b -= rol32(a, 14);      \
		c ^= b; c -= rol32(b, 24);      \
	}

/* Exactly the kernel's jhash2. Call it with a constant length so the loop unrolls and folds. */
static __always_inline __u32 jhash2(const __u32 *k, __u32 length, __u32 initval)
{
	__u32 a, b, c;

	a = b = c = JHASH_INITVAL + (length << 2) + initval;

	while (length > 3) {
		a += k[0];
		b += k[1];
		c += k[2];
		__jhash_mix(a, b, c);
		length -= 3;
		k += 3;
	}

	switch (length) {
	case 3:
		c += k[2];
		/* fall through */
	case 2:
		b += k[1];
		/* fall through */
	case 1:
		a += k[0];
		__jhash_final(a, b, c);
		break;
	case 0:
		break;
	}
	return c;
}

#endif
