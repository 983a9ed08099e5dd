/*
 * enroll.h - `fedc-client enroll`: the site's half of provisioning.
 */
#ifndef FEDC_CLIENT_ENROLL_H
#define FEDC_CLIENT_ENROLL_H

/* argv[0] is "enroll"; returns the program's exit code (0, or 2 for usage
 * and files that exist, 1 for other failures). */
int fedc__client_enroll_main(int argc, char **argv);

#endif
