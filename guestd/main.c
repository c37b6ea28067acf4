/* powerd-guest: placeholder until the daemon lands. */
#include <stdio.h>
int main(void)
{
	return 0;
}
