-- One database per service (SPEC §1); run once, when the volume is first initialised.
CREATE DATABASE identity;
CREATE DATABASE contacts;
CREATE DATABASE orders;
CREATE DATABASE issues;
CREATE DATABASE inventory;
