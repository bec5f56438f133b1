#!/bin/sh
# Like AWStats: a Content-Type and a body, but no Status line. SCGI requires
# a Status line in the response, so junction adds "Status: 200 OK".
echo 'Content-type: text/html'
echo
echo '<html><body>no status line</body></html>'
