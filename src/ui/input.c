/* PLACEHOLDER (replaced by the key map implementation before this lands). */
#include "ui/input.h"

#include <errno.h>

int ui_key(const struct ui_input *in, uint16_t code, bool down)
{
	return -ENOSYS;
}

int ui_keys(const struct ui_input *in, const char *combo, char *err, size_t n)
{
	return -ENOSYS;
}

int ui_type(const struct ui_input *in, const char *text, char *err, size_t n)
{
	return -ENOSYS;
}

int ui_pointer(const struct ui_input *in, uint32_t x, uint32_t y, uint32_t buttons)
{
	return -ENOSYS;
}

int ui_wheel(const struct ui_input *in, int clicks)
{
	return -ENOSYS;
}

uint16_t ui_key_code(const char *name)
{
	return 0;
}

uint16_t ui_keysym_code(uint32_t keysym, bool *shift)
{
	return 0;
}
