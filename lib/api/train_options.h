/* The contents of dlv_train_options. */
#ifndef DLV_API_TRAIN_OPTIONS_H
#define DLV_API_TRAIN_OPTIONS_H

#include "disclvlm.h"
#include "train/trainer.h"

struct dlv_train_options {
    dlv_train_config cfg;
};

#endif
