#!/usr/bin/perl
# AWStats style: a document response without a Status line.
print "Content-type: text/html\n\n";
print "<html><body>no status line</body></html>\n";
