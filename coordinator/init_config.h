/*
 * init_config.h - `fedc-coordinator init`: a commented starting config for
 * the user's own data, its schema read from a CSV's header (so that a new
 * consortium does not start from Fashion-MNIST's keys).
 */
#ifndef FEDC_COORD_INIT_CONFIG_H
#define FEDC_COORD_INIT_CONFIG_H

/* `init [--data FILE.csv] [--label NAME] [--job] [--out FILE]`: argv[0] is
 * "init". Returns the program's exit code: 0 written, 1 the file or the CSV
 * could not be read or written, 2 usage. */
int fedc__init_main(int argc, char **argv);

#endif
