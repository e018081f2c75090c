/* Little-endian stores and loads at byte granularity, for guest-visible structures (boot
 * protocol, ACPI, MP tables) laid out at spec offsets rather than through packed structs. */
#ifndef IGNITION_CORE_LE_H
#define IGNITION_CORE_LE_H

#include <stdint.h>

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The byte that makes p[0..len) sum to zero (ACPI and MP table checksums). */
static inline uint8_t sum_to_zero(const uint8_t *p, unsigned long len)
{
	uint8_t sum = 0;

	for (unsigned long i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)(0 - sum);
}

#endif
