#ifndef S3CACHE_CFASTCGI_SHIM_H
#define S3CACHE_CFASTCGI_SHIM_H
/* fcgiapp.h only: fcgi_stdio.h redefines FILE and stdout. */
#include <fcgiapp.h>
#endif
