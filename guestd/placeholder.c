/* Placeholder so the library has a source until the first module lands; delete it then. */
