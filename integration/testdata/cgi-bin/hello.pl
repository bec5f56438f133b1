#!/usr/bin/perl
use strict;
use warnings;
print "Content-Type: text/plain\r\n\r\n";
print "Hello from perl\n";
print "query=", ($ENV{QUERY_STRING} // ""), "\n";
