<?php echo "release v1\n";
