// Validates each HAR file named on the command line with har-validator
// (strict HAR 1.2 JSON schema from har-schema). Prints every schema error and
// exits 1 if any file is invalid.
'use strict'
const fs = require('fs')
const validator = require('har-validator')

async function main () {
  let failed = 0
  for (const path of process.argv.slice(2)) {
    const har = JSON.parse(fs.readFileSync(path, 'utf8'))
    try {
      await validator.har(har)
      console.log(`valid: ${path}`)
    } catch (err) {
      failed += 1
      console.log(`INVALID: ${path}`)
      for (const e of err.errors || [err]) {
        console.log(`  ${e.dataPath || ''} ${e.message || e}${e.params ? ' ' + JSON.stringify(e.params) : ''}`)
      }
    }
  }
  process.exit(failed === 0 ? 0 : 1)
}

main()
