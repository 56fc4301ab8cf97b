<?php echo "release v2\n";
