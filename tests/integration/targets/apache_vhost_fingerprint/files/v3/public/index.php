<?php echo "release v3\n";
