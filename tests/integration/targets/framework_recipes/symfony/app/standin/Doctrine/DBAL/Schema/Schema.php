<?php

namespace Doctrine\DBAL\Schema;

/** Stand-in (see standin/README.md): the migrations here only use addSql(). */
class Schema
{
}
